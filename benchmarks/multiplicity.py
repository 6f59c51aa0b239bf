"""Repeated and clustered eigenvalues: specinterp ``eigsh`` / ``svds`` against ARPACK.

Operators with a prescribed spectrum — the top value repeated 1, 2, 5, 20 or 50 times, or a
cluster of 10 values 1e-8 apart (relative) — as diagonal operators (rounding never mixes the
copies there) and as dense rotated matrices. Each solver is asked for the top k = 6 at
relative tolerance 1e-8; the error is the largest distance between the returned and the true
multiset of the top 6 (dense ``eigvalsh`` / the prescribed values), and products are counted.
specinterp runs with its missed-eigenvalue check (the default) and without it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as sla

from specinterp.linalg import LinearOperator, eigsh, svds
from specinterp.testing import matrix_with_spectrum, symmetric_with_eigenvalues

from .eigsh_vs_arpack import counting_scipy

TOL = 1e-8
K = 6


def _spectrum(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if kind.startswith("cluster"):
        top = 3.0 * (1.0 + 1e-8 * np.arange(10))
    else:
        top = np.full(int(kind.split("=")[1]), 3.0)
    return np.concatenate([top, rng.uniform(-1.0, 2.0, n - top.size)])


def _arpack(op: LinearOperator, k: int, svd: bool) -> tuple[np.ndarray, int]:
    sop, count = counting_scipy(op)
    v0 = np.random.default_rng(0).standard_normal(min(op.shape) if svd else op.shape[0])
    if svd:
        vals = sla.svds(sop, k, tol=TOL, v0=v0, return_singular_vectors=False)
    else:
        vals = sla.eigsh(sop, k, which="LA", tol=TOL, v0=v0, return_eigenvectors=False)
    return np.sort(vals)[::-1], count[0]


def _row(case: str, operator: str, spectrum: str, truth: np.ndarray, run) -> dict[str, object]:
    checked = run(True)
    plain = run(False)
    arpack_vals, arpack_mv = run(None)
    err = lambda v: float(np.max(np.abs(np.asarray(v) - truth)))  # noqa: E731
    return {
        "case": case,
        "operator": operator,
        "spectrum": spectrum,
        "err": err(checked.values),
        "matvecs": checked.num_matvecs,
        "verified": checked.verified,
        "err_no_check": err(plain.values),
        "matvecs_no_check": plain.num_matvecs,
        "arpack_err": err(arpack_vals),
        "arpack_matvecs": arpack_mv,
    }


def run(repeats: int = 1) -> list[dict[str, object]]:
    del repeats  # product counts and errors are deterministic
    rows = []
    kinds = ["mult=1", "mult=2", "mult=5", "mult=20", "mult=50", "cluster 1e-8"]
    for operator, n in (("diagonal n=2000", 2000), ("dense n=1000", 1000)):
        for kind in kinds:
            rng = np.random.default_rng(0)
            lam = _spectrum(kind, rng, n)
            if operator.startswith("diagonal"):
                op = LinearOperator((n, n), lambda v, d=lam: d * v, symmetric=True)
            else:
                a = symmetric_with_eigenvalues(lam, rng)
                op = LinearOperator((n, n), matmat=lambda x, a=a: a @ x, symmetric=True)
            truth = np.sort(lam)[::-1][:K]

            def solve(verify, op=op):
                if verify is None:
                    return _arpack(op, K, svd=False)
                return eigsh(op, K, tol=TOL, seed=0, verify=verify)

            rows.append(_row("eigsh", operator, kind, truth, solve))
    for kind in kinds:
        rng = np.random.default_rng(1)
        s = np.abs(_spectrum(kind, rng, 600)) + 0.01
        a = matrix_with_spectrum(s, 800, 600, rng)
        op = LinearOperator(a.shape, matmat=lambda x, a=a: a @ x, rmatmat=lambda y, a=a: a.T @ y)
        truth = np.sort(s)[::-1][:K]

        def solve_svd(verify, op=op):
            if verify is None:
                return _arpack(op, K, svd=True)
            return svds(op, K, tol=TOL, seed=0, verify=verify)

        rows.append(_row("svds", "dense 800x600", kind, truth, solve_svd))
    return rows
