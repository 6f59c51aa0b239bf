"""Host threads: a Krylov solver's small NumPy problems beside a PyTorch operator's products.

``eigsh`` runs its projected ``eigh`` at every step on the host. With NumPy's OpenBLAS threads
left as they are, they and PyTorch's OpenMP pool spin on the same cores between calls; the
solver now limits NumPy's BLAS to one thread while a non-NumPy operator runs the products
(``specinterp._xp.host_threads``). Here: Hessian top-5 and top-20 of the trained 670k-parameter
MLP (batch 256, float32, cross-entropy) at tolerance 1e-2, by ``eigsh`` with its defaults, with
NumPy's threads left on (the limit switched off), with partial reorthogonalisation instead of
the full one, and by curvlinops + ARPACK (as
scipy runs it, and with NumPy's/SciPy's BLAS on one thread, which spares it the same
contention). The error is against a float64 reference (tol 1e-10). One run, medians of
``repeats``.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np

import specinterp as si
from specinterp import _xp

from ._nets import trained
from ._peers import arpack_top5, curvlinops_hessian
from ._timing import interleaved_runs

NAME = "mlp-784-512-512-10"


def _eigsh(net, x, y, k, threads_on=False, **kw):
    op = si.hessian_operator(si.as_model(net), x, y, "cross_entropy")
    real = _xp.host_blas_single
    if threads_on:  # the solver as it was: NumPy's BLAS threads untouched
        _xp.host_blas_single = lambda xp: contextlib.nullcontext()
    try:
        res = si.linalg.eigsh(op, k, tol=1e-2, seed=0, **kw)
    finally:
        _xp.host_blas_single = real
    return np.asarray(res.values), res.num_matvecs


def run(repeats: int = 3) -> list[dict[str, object]]:
    bench = trained(NAME)
    net, (x, y) = bench.net, bench.batch(256)
    rows: list[dict[str, object]] = []
    for k in (5, 20):
        net64 = copy.deepcopy(net).double()
        op64 = si.hessian_operator(si.as_model(net64), x.double(), y, "cross_entropy")
        ref = np.asarray(si.linalg.eigsh(op64, k, tol=1e-10, seed=0, max_iter=500).values)
        cands = {
            "eigsh (defaults)": lambda k=k: _eigsh(net, x, y, k),
            "eigsh, NumPy BLAS threads left on": lambda k=k: _eigsh(net, x, y, k, True),
            "eigsh reorthogonalize='partial'": lambda k=k: _eigsh(
                net, x, y, k, reorthogonalize="partial"
            ),
        }
        try:
            curvlinops_hessian(net, x, y)
            cands["curvlinops + ARPACK tol=0.01"] = lambda k=k: arpack_top5(
                curvlinops_hessian(net, x, y), 1e-2, k
            )
            cands["curvlinops + ARPACK, 1 BLAS thread"] = lambda k=k: arpack_top5(
                curvlinops_hessian(net, x, y), 1e-2, k, one_thread=True
            )
        except ImportError:
            pass
        runs = interleaved_runs(cands, repeats=repeats)
        base = runs["eigsh (defaults)"][0]
        for method, (secs, (vals, products)) in runs.items():
            vals = np.sort(np.asarray(vals, dtype=float))[::-1][:k]
            rows.append(
                {"case": "host threads", "model": NAME, "k": k, "method": method}
                | {"products": products, "median_s": secs}
                | {"rel_err": float(np.max(np.abs(vals - ref) / np.abs(ref)))}
                | {"time / defaults": secs / base}
            )
    return rows
