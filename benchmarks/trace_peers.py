"""Hessian trace at a target relative standard error (issue: performance, case 2).

For budgets m of Hessian-vector products, each estimator runs with 12 seeds; its relative
standard error at m is the spread of those estimates over their mean. The table reports, per
method, the products needed to reach 1 % (log-log interpolation between budgets) and the time
per run at that budget. Methods: specinterp Hutchinson, Hutch++ and XTrace; curvlinops
``hutchpp_trace`` and ``xtrace``; PyHessian ``trace`` (Hutchinson; ``tol=0`` so it runs all
``maxIter`` products). Model: MLP 784-128-10, batch 256, cross-entropy, float32.
"""

from __future__ import annotations

import importlib
import time

import numpy as np
import torch

import specinterp as si

from ._peers import curvlinops_hessian

BUDGETS = (24, 48, 96, 192, 384)
SEEDS = 12


def _needed(budgets, rel_errs, target=0.01):
    b, e = np.log(np.asarray(budgets, float)), np.log(np.asarray(rel_errs, float))
    if np.exp(e[-1]) > target:
        return float("nan")
    if np.exp(e[0]) <= target:
        return float(budgets[0])
    i = int(np.argmax(np.exp(e) <= target))
    t = (np.log(target) - e[i - 1]) / (e[i] - e[i - 1])
    return float(np.exp(b[i - 1] + t * (b[i] - b[i - 1])))


def run(repeats: int = 1) -> list[dict[str, object]]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    ).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 784, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    op = si.hessian_operator(si.as_model(net), x, y, "cross_entropy")
    methods = {
        f"specinterp {m}": (
            lambda budget, seed, m=m: (
                si.linalg.trace(op, method=m, num_matvecs=budget, seed=seed).estimate
            )
        )
        for m in ("hutchinson", "hutch++", "xtrace")
    }
    try:
        from curvlinops import hutchpp_trace, xtrace

        hop = curvlinops_hessian(net, x, y)

        def cl(fn):
            def est(budget, seed):
                torch.manual_seed(seed)
                return float(fn(hop, budget))

            return est

        methods["curvlinops hutchpp_trace"] = cl(hutchpp_trace)
        methods["curvlinops xtrace"] = cl(xtrace)
    except ImportError:
        pass
    try:
        ph = importlib.import_module("pyhessian.hessian")
        comp = ph.hessian(net, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)

        def pyh(budget, seed):
            torch.manual_seed(seed)
            return float(np.mean(comp.trace(maxIter=budget, tol=0.0)))

        methods["PyHessian trace"] = pyh
    except ImportError:
        pass
    rows = []
    for name, est in methods.items():
        rel, secs = [], []
        for budget in BUDGETS:
            t0 = time.perf_counter()
            vals = np.array([est(budget, s) for s in range(SEEDS)])
            secs.append((time.perf_counter() - t0) / SEEDS)
            rel.append(vals.std(ddof=1) / abs(vals.mean()))
        need = _needed(BUDGETS, rel)
        rows.append(
            {
                "case": "trace_1pct",
                "method": name,
                **{f"rel_se@{b}": round(r, 4) for b, r in zip(BUDGETS, rel, strict=True)},
                "hvps_for_1pct": round(need, 1) if np.isfinite(need) else "> 384",
                "seconds_per_run@384": round(secs[-1], 3),
            }
        )
    return rows
