"""Randomised low-rank approximation (Halko, Martinsson & Tropp 2011; Tropp et al. 2017).

``randomized_svd``: range finder with oversampling and power iterations re-orthonormalised by
QR at every half-step, then the SVD of the small ``Qᵀ A``. ``nystrom``: the numerically stable
Nyström approximation of a PSD operator with a shift ``ν`` (Tropp, Yurtsever, Udell & Cevher
2017, Alg. 3). Both report per-value residuals computed with ``k`` extra products, so the T9
bound holds for what they return.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _xp
from ._scaling import SelfScaling, unscale
from .operator import LinearOperator, aslinearoperator
from .results import EigResult, SVDResult

Array = Any

__all__ = ["nystrom", "randomized_svd"]


def _check_rank(k: int, oversample: int, limit: int) -> int:
    if not 1 <= k <= limit:
        raise ValueError(f"k must satisfy 1 ≤ k ≤ {limit}; got k={k}")
    if oversample < 0:
        raise ValueError(f"oversample must be ≥ 0; got {oversample}")
    return min(limit, k + oversample)


def randomized_svd(
    op: LinearOperator | Array,
    k: int,
    *,
    oversample: int = 10,
    power_iters: int = 2,
    seed: int | np.random.Generator | None = 0,
) -> SVDResult:
    """Approximate top-``k`` singular triplets of an ``m × n`` operator (HMT 2011, Alg. 4.4/5.1).

    Parameters
    ----------
    op : LinearOperator (with ``rmatvec``), dense array, or SciPy sparse matrix or operator
    k : int
        Number of triplets.
    oversample : int
        Extra random directions ``p`` (sketch size ``k + p``).
    power_iters : int
        Power iterations ``q``; each costs ``2(k + p)`` products and sharpens a slowly
        decaying spectrum (error factor ``(σ_{k+1}/σ_k)^{2q+1}``).
    seed : int, Generator or None
        Seeds the Gaussian test matrix.

    Returns
    -------
    SVDResult
        ``residuals[i] = ‖A v_i − σ_i u_i‖`` (``Aᵀ u_i = σ_i v_i`` holds by construction).

    """
    op = aslinearoperator(op)
    op._need_adjoint()
    op = SelfScaling(op)  # no over- or underflow inside, whatever the operator's norm
    xp = op.xp
    ell = _check_rank(k, oversample, min(op.shape))
    rng = _xp.as_generator(seed, xp, op.device)
    omega = rng.normal((op.shape[1], ell), dtype=op.dtype)
    q, _ = xp.linalg.qr(op.matmat(omega))
    matvecs = ell
    for _ in range(int(power_iters)):
        z, _ = xp.linalg.qr(op.rmatmat(q))
        q, _ = xp.linalg.qr(op.matmat(z))
        matvecs += 2 * ell
    bt = op.rmatmat(q)  # Aᵀ Q = Bᵀ, (n, ℓ)
    matvecs += ell
    v_full, sigma, ub_t = xp.linalg.svd(bt, full_matrices=False)  # Bᵀ = V Σ Ubᵀ
    right = v_full[:, :k]
    values = sigma[:k]
    left = q @ ub_t.T[:, :k]
    resid = xp.linalg.vector_norm(op.matmat(right) - left * values, axis=0)
    matvecs += k
    eps = _xp.eps(xp, op.dtype)
    resid = resid + max(op.shape) * eps * values[0]
    c = unscale(op.scale)
    return SVDResult(
        values=values * c,
        left=left,
        right=right,
        residuals=resid * c,
        converged=True,
        num_matvecs=matvecs,
    )


def nystrom(
    op: LinearOperator | Array,
    k: int,
    *,
    oversample: int = 10,
    seed: int | np.random.Generator | None = 0,
) -> EigResult:
    """Approximate top-``k`` eigenpairs of a symmetric PSD operator by stable Nyström.

    ``Y = A Ω`` for an orthonormal Gaussian ``Ω``, a shift ``ν = √n · eps · ‖Y‖_F`` for
    stability, ``C = chol(Ωᵀ(Y + νΩ))``, ``B = (Y + νΩ) C⁻ᵀ = U Σ Vᵀ``, ``λ = max(Σ² − ν, 0)``
    (Tropp, Yurtsever, Udell & Cevher 2017). Residuals ``‖A u_i − λ_i u_i‖`` cost ``k`` products.

    Raises
    ------
    ValueError
        If the operator is not symmetric, or the Cholesky factor fails (not PSD).

    """
    op = aslinearoperator(op)
    if not op.symmetric:
        raise ValueError("nystrom needs a symmetric positive semi-definite operator")
    op = SelfScaling(op)  # no over- or underflow inside, whatever the operator's norm
    xp = op.xp
    n = op.shape[0]
    ell = _check_rank(k, oversample, n)
    rng = _xp.as_generator(seed, xp, op.device)
    omega, _ = xp.linalg.qr(rng.normal((n, ell), dtype=op.dtype))
    y = op.matmat(omega)
    eps = _xp.eps(xp, op.dtype)
    y_norm = float(xp.linalg.vector_norm(y))
    if y_norm == 0:  # A Ω = 0 for a Gaussian Ω: the zero operator, whose eigenvalues are 0
        zeros = xp.zeros((k,), dtype=op.dtype, device=op.device)
        return EigResult(zeros, omega[:, :k], zeros, converged=True, num_matvecs=ell)
    nu = float(np.sqrt(n) * eps * y_norm)
    y_nu = y + nu * omega
    core = omega.T @ y_nu
    core = 0.5 * (core + core.T)
    not_psd = ValueError(
        "the Nyström core is not positive definite: the operator is not PSD (use eigsh)"
    )
    try:
        chol = xp.linalg.cholesky(core)
    except Exception as exc:  # NumPy / torch raise LinAlgError; JAX returns NaN (below)
        raise not_psd from exc
    if not _xp.all_finite(chol, xp):
        raise not_psd
    b = xp.linalg.solve(chol, y_nu.T).T  # (n, ℓ) = Y_ν C⁻ᵀ
    u, sigma, _ = xp.linalg.svd(b, full_matrices=False)
    lam = xp.clip(sigma[:k] ** 2 - nu, 0.0, None)
    vecs = u[:, :k]
    resid = xp.linalg.vector_norm(op.matmat(vecs) - vecs * lam, axis=0)
    resid = resid + n * eps * lam[0]
    c = unscale(op.scale)
    return EigResult(
        values=lam * c, vectors=vecs, residuals=resid * c, converged=True, num_matvecs=ell + k
    )
