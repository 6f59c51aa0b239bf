"""Top singular triplets by thick-restart Golub–Kahan–Lanczos bidiagonalisation.

Theory: :ref:`theory-algorithms`.

``A V_j = U_j M_j`` and ``Aᵀ U_j = V_j M_jᵀ + v_{j+1} fᵀ`` with orthonormal ``U``, ``V``
(Golub & Kahan 1965). The projected matrix ``M = Uᵀ A V`` is computed, not assumed
bidiagonal, both bases are reorthogonalised twice against themselves, and restarts keep the
best Ritz triplets (thick restart, Baglama & Reichel 2005). For a Ritz triplet
``(σ_i, U y_i, V x_i)`` the first relation holds exactly and ``Aᵀ U y_i − σ_i V x_i =
v_{j+1} (fᵀ y_i)``, so ``|fᵀ y_i|`` is its residual and a singular value of ``A`` lies within it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .. import _xp
from . import _missed
from ._orth import Basis, normalize_or_restart, project_out
from ._ritz import threshold
from ._scaling import SelfScaling, unscale
from .operator import LinearOperator, aslinearoperator
from .results import SVDResult

Array = Any

__all__ = ["svds"]


def svds(
    op: LinearOperator | Array,
    k: int = 6,
    *,
    tol: float | None = None,
    max_iter: int = 300,
    ncv: int | None = None,
    seed: int | np.random.Generator | None = 0,
    return_vectors: bool = False,
    verify: bool = True,
) -> SVDResult:
    """Top-``k`` singular values (and vectors on request) of an ``m × n`` operator.

    Parameters
    ----------
    op : LinearOperator (with ``rmatvec``), dense array, or SciPy sparse matrix or operator
    k : int
        ``1 ≤ k ≤ min(m, n)``.
    tol : float, optional
        Converged when ``residual ≤ tol · max(σ_i, eps^{2/3} σ_1)`` or at most ``eps · σ_1``,
        the rounding of one product; default ``√eps``.
    max_iter : int
        Maximum number of restarts.
    ncv : int, optional
        Bidiagonalisation steps before a restart; default ``max(2k + 1, 20)``, capped at
        ``min(m, n)``.
    seed : int, Generator or None
        Seeds the starting vector (and breakdown restarts).
    return_vectors : bool
        Also return ``left (m, k)`` and ``right (n, k)`` singular vectors.
    verify : bool
        After convergence, look for singular values the Krylov space could not see (repeated
        or clustered ones) with the missed-eigenvalue check of :func:`eigsh` on ``AᵀA``
        deflated by the found right vectors, and add any it finds (docs: numerical
        guarantees, #numerics-multiplicity).

    Returns
    -------
    SVDResult
        Values in descending order; ``num_matvecs`` counts products with ``A`` and ``Aᵀ``
        (the check's included); ``verified`` as in :func:`eigsh`.

    """
    op = aslinearoperator(op)
    op._need_adjoint()
    xp = op.xp
    rows, cols = op.shape
    r = min(rows, cols)
    if not 1 <= k <= r:
        raise ValueError(f"k must satisfy 1 ≤ k ≤ min(m, n) = {r}; got k={k}")
    m = min(r, max(2 * k + 1, 20) if ncv is None else int(ncv))
    if m < min(r, k + 1):
        raise ValueError(f"ncv must exceed k (or equal min(m, n)); got {ncv}")
    eps = _xp.eps(xp, op.dtype)
    tol = float(np.sqrt(eps)) if tol is None else float(tol)
    rng = _xp.as_generator(seed, xp, op.device)
    scaled = SelfScaling(op)  # no over- or underflow inside, whatever the operator's norm
    with _xp.host_blas_single(xp):  # the projected problems are small: no thread contention
        res = _gkl(scaled, k, tol, max_iter, m, rng)
        verified = res.converged and m >= r
        if verify and res.converged and m < r:
            res, verified = _verify(scaled, res, k, tol, max_iter, m, rng)
    c = unscale(scaled.scale)
    return SVDResult(
        values=res.values * c,
        left=res.left if return_vectors else None,
        right=res.right if return_vectors else None,
        residuals=res.residuals * c,
        converged=res.converged,
        num_matvecs=res.num_matvecs,
        verified=verified,
    )


def _verify(
    op: LinearOperator, res: SVDResult, k: int, tol: float, max_iter: int, m: int, rng: Any
) -> tuple[SVDResult, bool]:
    """The missed-eigenvalue check of :func:`eigsh` on ``AᵀA`` (rounds as there)."""
    xp = op.xp
    gram = LinearOperator(
        (op.shape[1], op.shape[1]),
        lambda v: op.rmatvec(op.matvec(v)),
        dtype=op.dtype,
        xp=xp,
        device=op.device,
        symmetric=True,
    )
    locked = res.right
    matvecs = res.num_matvecs
    outcome = "unverified"
    for _ in range(k + 1):
        s = _xp.to_numpy(res.values).astype(np.float64)
        r = _xp.to_numpy(res.residuals).astype(np.float64)
        side = _missed.sides(s**2, "LA", k, 2 * float(s.max()) * (tol * float(s.max()) + r.max()))
        outcome, used = _missed.check(
            gram,
            locked,
            side,
            tol=tol,
            rng=rng,
            max_steps=_missed.step_budget(gram, m, max(3 * m, res.num_matvecs // 2)),
        )
        matvecs += 2 * used
        if outcome != "found":
            break
        extra = _gkl(_missed.right_deflated(op, locked), k, tol, max_iter, m, rng)
        new = np.flatnonzero(_missed.outside(locked, extra.right))
        if new.size == 0:  # only the null directions X of A P came back
            outcome = "unverified"
            break
        extra = replace(
            extra,
            values=_missed.columns(extra.values, new),
            left=_missed.columns(extra.left, new),
            right=_missed.columns(extra.right, new),
            residuals=_missed.columns(extra.residuals, new),
        )
        # the extra triplets are exact for A P; their residuals for A itself, measured
        av = op.matmat(extra.right) - extra.left * extra.values[None, :]
        atu = op.rmatmat(extra.left) - extra.right * extra.values[None, :]
        extra_res = xp.sqrt(xp.sum(av * av, axis=0) + xp.sum(atu * atu, axis=0))
        matvecs += extra.num_matvecs + 2 * int(new.size)
        values = xp.concat([res.values, extra.values])
        pick = [int(i) for i in np.argsort(-_xp.to_numpy(values), kind="stable")[:k]]
        res = SVDResult(
            values=_missed.columns(values, pick),
            left=_missed.columns(xp.concat([res.left, extra.left], axis=1), pick),
            right=_missed.columns(xp.concat([res.right, extra.right], axis=1), pick),
            residuals=_missed.columns(xp.concat([res.residuals, extra_res]), pick),
            converged=res.converged and extra.converged,
            num_matvecs=0,
        )
        locked = xp.concat([locked, extra.right], axis=1)
    return replace(res, num_matvecs=matvecs), outcome == "verified"


def _gkl(op: LinearOperator, k: int, tol: float, max_iter: int, m: int, rng: Any) -> SVDResult:
    """Thick-restart Golub–Kahan–Lanczos itself (see :func:`svds`); vectors always formed."""
    xp = op.xp
    rows, cols = op.shape
    r = min(rows, cols)
    eps = _xp.eps(xp, op.dtype)
    v_next = rng.normal((cols,), dtype=op.dtype)
    v_ref = float(xp.linalg.vector_norm(v_next))
    f = np.zeros(0)  # couplings Aᵀ U = V Mᵀ + v_next fᵀ
    u_store = Basis(op.matvec(v_next) * 0.0, m)  # a zero (rows,) probe fixes dtype/device
    v_store = Basis(v_next, m)
    mat = np.zeros((0, 0))  # host float64, M = Uᵀ A V
    matvecs = 0

    for restart in range(max_iter + 1):
        while v_store.size < m:
            v, _ = project_out(v_store, v_next)
            v, _ = normalize_or_restart(v_store, v, v_ref, rng)
            v_store.append(v)
            u = op.matvec(v)
            u_ref = float(xp.linalg.vector_norm(u))
            u, c = project_out(u_store, u)
            u, alpha = normalize_or_restart(u_store, u, u_ref, rng)
            u_store.append(u)
            j = v_store.size - 1
            grown = np.zeros((j + 1, j + 1))
            grown[:j, :j] = mat
            if c is not None:
                grown[:j, j] = c
            grown[j, j] = alpha
            mat = grown
            w = op.rmatvec(u)
            matvecs += 2
            v_ref = float(xp.linalg.vector_norm(w))
            v_next, d = project_out(v_store, w)
            # row j of M from the adjoint side; its entries left of the diagonal are rounding
            # noise in exact Golub–Kahan and are kept for an exact projected matrix
            mat[j, :j] = d[:j]
            f = np.zeros(j + 1)
            f[j] = float(xp.linalg.vector_norm(v_next))
            if v_store.size == r:
                break
        y, sigma, xt = np.linalg.svd(mat)
        s_max = float(sigma[0]) if sigma.size else 0.0
        res = np.abs(f @ y) if v_store.size < r else np.zeros_like(sigma)
        # ARPACK's rule, but never below the rounding of one product
        thresh = threshold(sigma[:k], s_max, tol, eps)
        converged = bool(np.all(res[:k] <= thresh)) or v_store.size == r
        res = res + v_store.size * eps * s_max  # rounding: keeps the bound rigorous
        if converged or restart == max_iter:
            break
        p = min(k + (m - k) // 2, m - 1)
        u_store.rotate(y[:, :p])
        v_store.rotate(np.ascontiguousarray(xt[:p, :].T))
        f = f @ y[:, :p]
        mat = np.diag(sigma[:p])
        # the next A v_next has components f on the kept U: project_out recovers them

    u_basis, v_basis = u_store.matrix, v_store.matrix
    left = u_basis @ _xp.from_host(y[:, :k], u_basis)
    right = v_basis @ _xp.from_host(xt[:k, :].T, v_basis)
    return SVDResult(
        values=_xp.from_host(sigma[:k], v_basis),
        left=left,
        right=right,
        residuals=_xp.from_host(res[:k], v_basis),
        converged=converged,
        num_matvecs=matvecs,
    )
