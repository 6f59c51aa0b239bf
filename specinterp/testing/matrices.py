"""Matrices with a prescribed spectrum, ``Q diag(s) Vᵀ`` with Haar-random orthogonal factors.

Built in NumPy float64 — the reference precision — so a test can convert one matrix to every
backend and compare each backend's answer with the spectrum it was built from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _xp
from ..linalg import LinearOperator

__all__ = [
    "haar_orthogonal",
    "matrix_with_spectrum",
    "operator_with_spectrum",
    "symmetric_with_eigenvalues",
]


def haar_orthogonal(n: int, rng: np.random.Generator, k: int | None = None) -> np.ndarray:
    """The first ``k`` columns (default all ``n``) of a Haar-distributed orthogonal matrix.

    QR of a Gaussian matrix with the signs of ``R``'s diagonal moved into ``Q`` (Mezzadri 2007),
    which makes the distribution exactly Haar.
    """
    k = n if k is None else k
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def matrix_with_spectrum(
    singular_values: np.ndarray, m: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """An ``m × n`` matrix ``Q diag(s) Vᵀ`` whose singular values are exactly ``s``.

    ``s`` has ``min(m, n)`` non-negative entries (any order); ``Q``, ``V`` are Haar.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    r = min(m, n)
    if s.shape != (r,) or np.any(s < 0):
        raise ValueError(f"need {r} non-negative singular values for a {m}×{n} matrix")
    return (haar_orthogonal(m, rng, r) * s) @ haar_orthogonal(n, rng, r).T


def symmetric_with_eigenvalues(eigenvalues: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A symmetric matrix ``Q diag(λ) Qᵀ`` with exactly the given (real) eigenvalues."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    q = haar_orthogonal(lam.size, rng)
    a = (q * lam) @ q.T
    return 0.5 * (a + a.T)


def operator_with_spectrum(
    eigenvalues: np.ndarray,
    rng: np.random.Generator,
    *,
    num_reflections: int = 3,
    xp: Any = None,
) -> LinearOperator:
    """A matrix-free symmetric operator ``Q diag(λ) Qᵀ`` with exactly the given eigenvalues.

    ``Q = H_1 ⋯ H_r`` is a product of random Householder reflections, so a product costs
    ``O(n r)`` and ``n`` can be far beyond what a dense eigensolver could check: the spectrum is
    known by construction. ``xp`` is the namespace of the operator (default NumPy).
    """
    if xp is None:
        xp = _xp.default_namespace()
    lam_np = np.asarray(eigenvalues, dtype=np.float64)
    n = lam_np.size
    vs = rng.standard_normal((num_reflections, n))
    vs /= np.linalg.norm(vs, axis=1, keepdims=True)
    lam = xp.asarray(lam_np)
    refl = [xp.asarray(v) for v in vs]

    def q_apply(x: Any, order: list[Any]) -> Any:
        for v in order:
            x = x - 2.0 * v[:, None] * (v[None, :] @ x)
        return x

    def matmat(x: Any) -> Any:
        y = q_apply(x, refl)  # Qᵀ x = H_r ⋯ H_1 x, reflections are symmetric
        return q_apply(lam[:, None] * y, refl[::-1])

    return LinearOperator((n, n), matmat=matmat, xp=xp, symmetric=True, dtype=lam.dtype)
