"""Hessian trace at a target relative standard error (issue: performance, case 2).

For budgets ``m`` of Hessian-vector products each estimator runs with independent seeds; its
relative standard error at ``m`` is the spread of those estimates over their mean. Methods:
specinterp Hutchinson, Hutch++ and XTrace; curvlinops ``hutchpp_trace`` and ``xtrace``;
PyHessian ``trace`` (Hutchinson; ``tol=0`` so it runs all ``maxIter`` products).

Reported per method and model:

* ``rel_se@m`` for every budget, and ``hvps_for_1pct``: the budget that reaches 1 % (log-log
  interpolation between budgets; for the Hutchinson estimators, whose variance is exactly
  ``σ²/m``, extrapolated as ``m (se_m / 1 %)²`` beyond the largest budget).
* ``hutchinson_equiv@m``: how many Hutchinson products give the same standard error as the
  method at the largest budget ``m`` — ``m (se_H(m) / se(m))²`` with ``se_H(m) = σ/√m`` from
  the pooled per-probe spread of all Hutchinson runs (the precise estimate) — and
  ``fewer_hvps_than_hutchinson``, that over ``m``. The acceptance target is ≥ 2.

Models (``benchmarks._nets``): the MLPs 784-128-10 and 784-512-512-10 trained on MNIST-5k,
batch 256, cross-entropy, float32. The curvature of a trained network has a few dominant
eigenvalues above a flat bulk, which the sketch of Hutch++ / XTrace captures; at random
initialisation it has not, and there the variance-reduced estimators gain little.
"""

from __future__ import annotations

import gc
import importlib
import time

import numpy as np
import torch

import specinterp as si

from ._nets import trained
from ._peers import curvlinops_hessian

SIZES = {
    "mlp-784-128-10": ((24, 48, 96, 192, 384), 16),
    "mlp-784-512-512-10": ((96, 384), 8),
}


def _needed(budgets, rel_errs, target=0.01, hutchinson=False):
    b, e = np.log(np.asarray(budgets, float)), np.log(np.asarray(rel_errs, float))
    if np.exp(e[-1]) > target:
        return budgets[-1] * (np.exp(e[-1]) / target) ** 2 if hutchinson else float("nan")
    if np.exp(e[0]) <= target:
        return float(budgets[0])
    i = int(np.argmax(np.exp(e) <= target))
    t = (np.log(target) - e[i - 1]) / (e[i] - e[i - 1])
    return float(np.exp(b[i - 1] + t * (b[i] - b[i - 1])))


def _methods(net, x, y):
    op = si.hessian_operator(si.as_model(net), x, y, "cross_entropy")
    methods = {
        f"specinterp {m}": (
            lambda budget, seed, m=m: si.linalg.trace(op, method=m, num_matvecs=budget, seed=seed)
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
    return methods


def run(repeats: int = 1) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, (budgets, seeds) in SIZES.items():
        bench = trained(name)
        x, y = bench.batch(256)
        per_method = {}
        for method, est in _methods(bench.net, x, y).items():
            rel, secs, pooled = [], [], []
            for budget in budgets:
                gc.collect()
                t0 = time.perf_counter()
                out = [est(budget, s) for s in range(seeds)]
                secs.append((time.perf_counter() - t0) / seeds)
                vals = np.array([getattr(o, "estimate", o) for o in out], dtype=float)
                rel.append(vals.std(ddof=1) / abs(vals.mean()))
                if method == "specinterp hutchinson":  # per-probe σ from each run's stderr
                    pooled += [o.stderr**2 * budget for o in out]
                mean = vals.mean()
            per_method[method] = (rel, secs, mean)
            if pooled:
                sigma_rel = np.sqrt(np.mean(pooled)) / abs(mean)
        m = budgets[-1]
        for method, (rel, secs, mean) in per_method.items():
            hutch = method in ("specinterp hutchinson", "PyHessian trace")
            need = _needed(budgets, rel, hutchinson=hutch)
            equiv = m * (sigma_rel / np.sqrt(m) / rel[-1]) ** 2
            rows.append(
                {"case": "2 trace 1% SE", "model": name, "params": bench.num_params}
                | {"method": method, "seeds": seeds, "mean": round(float(mean), 4)}
                | {f"rel_se@{b}": round(r, 4) for b, r in zip(budgets, rel, strict=True)}
                | {"hvps_for_1pct": round(need, 1) if np.isfinite(need) else f"> {m}"}
                | {f"hutchinson_equiv@{m}": round(float(equiv), 1)}
                | {"fewer_hvps_than_hutchinson": round(float(equiv / m), 2)}
                | {f"seconds_per_run@{m}": round(secs[-1], 3)}
            )
    return rows
