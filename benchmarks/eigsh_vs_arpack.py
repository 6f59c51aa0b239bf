"""Lanczos / GKL against SciPy's ARPACK on the same operators (issue: matrix-free engine).

For each operator and k ∈ {1, 5, 20}: products used and wall time of ``specinterp.linalg.eigsh``
(thick-restart Lanczos) and ``scipy.sparse.linalg.eigsh`` (ARPACK), both asked for relative
tolerance 1e-8 and both checked against the known spectrum; same for ``svds``. Timed
interleaved in one process. specinterp runs with its missed-eigenvalue check (the default);
``matvecs_no_check`` is the count without it (``verify=False``).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse.linalg as sla

from specinterp.linalg import LinearOperator, eigsh, svds
from specinterp.testing import (
    matrix_with_spectrum,
    operator_with_spectrum,
    symmetric_with_eigenvalues,
)

TOL = 1e-8


def counting_scipy(op: LinearOperator) -> tuple[sla.LinearOperator, list[int]]:
    count = [0]

    def mv(v):
        count[0] += 1
        return op.matvec(np.ascontiguousarray(v).ravel())

    def rmv(u):
        count[0] += 1
        return op.rmatvec(np.ascontiguousarray(u).ravel())

    return sla.LinearOperator(op.shape, matvec=mv, rmatvec=rmv, dtype=np.float64), count


def _timed(fn, repeats: int):
    best = None
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return out, best


def _eig_cases(rng):
    n = 5000
    lam = np.concatenate([np.linspace(10.0, 5.0, 25), rng.uniform(-1.0, 4.0, n - 25)])
    dense = symmetric_with_eigenvalues(lam, rng)
    yield "dense n=5000", LinearOperator((n, n), matmat=lambda x: dense @ x, symmetric=True), lam
    n = 200_000
    lam = np.concatenate([np.linspace(10.0, 5.0, 25), rng.uniform(-1.0, 4.0, n - 25)])
    yield "matrix-free n=200000", operator_with_spectrum(lam, rng), lam


def run(repeats: int = 3) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    rows = []
    for name, op, lam in _eig_cases(rng):
        top = np.sort(lam)[::-1]
        for k in (1, 5, 20):
            ours, t_ours = _timed(lambda op=op, k=k: eigsh(op, k, tol=TOL, seed=0), repeats)
            sop, count = counting_scipy(op)
            v0 = np.random.default_rng(0).standard_normal(op.shape[0])

            def arpack(sop=sop, k=k, v0=v0, count=count):
                count[0] = 0
                return sla.eigsh(sop, k, which="LA", tol=TOL, v0=v0, return_eigenvectors=False)

            theirs, t_theirs = _timed(arpack, repeats)
            rows.append(
                {
                    "case": "eigsh",
                    "operator": name,
                    "k": k,
                    "matvecs": ours.num_matvecs,
                    "matvecs_no_check": eigsh(op, k, tol=TOL, seed=0, verify=False).num_matvecs,
                    "arpack_matvecs": count[0],
                    "matvec_ratio": ours.num_matvecs / count[0],
                    "time_s": t_ours,
                    "arpack_time_s": t_theirs,
                    "time_ratio": t_ours / t_theirs,
                    "rel_err": float(np.max(np.abs(np.asarray(ours.values) - top[:k]) / top[:k])),
                    "arpack_rel_err": float(
                        np.max(np.abs(np.sort(theirs)[::-1] - top[:k]) / top[:k])
                    ),
                }
            )
    s = np.concatenate([np.linspace(10.0, 5.0, 25), rng.uniform(0.0, 4.0, 1475)])
    a = matrix_with_spectrum(s, 3000, 1500, rng)
    op = LinearOperator(a.shape, matmat=lambda x: a @ x, rmatmat=lambda y: a.T @ y)
    for k in (1, 5, 20):
        ours, t_ours = _timed(lambda k=k: svds(op, k, tol=TOL, seed=0), repeats)
        sop, count = counting_scipy(op)
        v0 = np.random.default_rng(0).standard_normal(min(a.shape))

        def arpack_svd(sop=sop, k=k, count=count, v0=v0):
            count[0] = 0
            return sla.svds(sop, k, tol=TOL, v0=v0, return_singular_vectors=False)

        theirs, t_theirs = _timed(arpack_svd, repeats)
        rows.append(
            {
                "case": "svds",
                "operator": "dense 3000x1500",
                "k": k,
                "matvecs": ours.num_matvecs,
                "matvecs_no_check": svds(op, k, tol=TOL, seed=0, verify=False).num_matvecs,
                "arpack_matvecs": count[0],
                "matvec_ratio": ours.num_matvecs / count[0],
                "time_s": t_ours,
                "arpack_time_s": t_theirs,
                "time_ratio": t_ours / t_theirs,
                "rel_err": float(np.max(np.abs(np.asarray(ours.values) - s[:k]) / s[:k])),
                "arpack_rel_err": float(np.max(np.abs(np.sort(theirs)[::-1] - s[:k]) / s[:k])),
            }
        )
    return rows
