"""Plain Lanczos tridiagonalisation, fully or partially reorthogonalised (:ref:`theory-slq`).

The run behind stochastic Lanczos quadrature: one starting vector, no restarts, the diagonal
and off-diagonal of ``T`` returned to the host. Partial reorthogonalisation follows Simon (1984)
(:ref:`theory-lanczos`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .. import _xp
from ._orth import Basis, project_out
from ._partial import Omega, gram_deviation, recurrence_step
from .operator import LinearOperator

Array = Any

__all__ = ["lanczos_tridiagonal"]


def lanczos_tridiagonal(
    op: LinearOperator,
    v0: Array,
    num_steps: int,
    *,
    reorthogonalize: Literal["full", "partial"] = "full",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Lanczos from ``v0`` for up to ``num_steps`` steps: the tridiagonal ``T`` of ``v0``.

    Returns the diagonal ``α`` and off-diagonal ``β`` of ``T`` (host float64) and the number of
    products. Stops early at an invariant subspace (``β ≈ 0``), where the Gauss quadrature of
    ``v0``'s spectral measure is already exact (SLQ relies on that).

    ``reorthogonalize="full"`` projects every new vector against the whole basis (two passes
    when the first cancels much). ``"partial"`` runs the three-term recurrence and
    reorthogonalises only when Simon's recurrence for the loss of orthogonality
    ``ω_{jk} ≈ q_jᵀ q_k`` estimates it above ``√eps`` — then the new vector and the next one
    against the whole basis (partial reorthogonalisation; Simon 1984,
    :ref:`theory-lanczos`). That keeps the basis semi-orthogonal (``|q_jᵀ q_k| ≤ √eps``), which
    suffices for ``T`` to be, to ``O(eps ‖A‖)``, the projection of ``A`` on an orthonormal basis
    of a nearby Krylov space (Simon 1984, Thm 4): its eigenvalues and Gauss rule are those of
    full reorthogonalisation to that order, at a fraction of the basis reads. The estimate
    models the rounding rather than measuring it, so the finished basis is checked
    (``‖VᵀV − I‖₂ ≤ s √eps``, one ``s × s`` Gram product); where it fails the run is repeated
    with full reorthogonalisation and the count includes both runs' products.
    """
    if reorthogonalize not in ("full", "partial"):
        raise ValueError(f"reorthogonalize must be 'full' or 'partial'; got {reorthogonalize!r}")
    alphas, betas, store = _run(op, v0, num_steps, reorthogonalize == "partial")
    if reorthogonalize == "partial" and not semi_orthogonal(store, _xp.eps(op.xp, op.dtype)):
        # Simon's estimate missed a loss (it models the rounding, it does not measure it):
        # the T of a basis that is not semi-orthogonal is not the projection it stands for
        spent, store = len(alphas), None  # the discarded basis goes before the new one comes
        alphas, betas, _ = _run(op, v0, num_steps, False)
        return np.asarray(alphas), np.asarray(betas), spent + len(alphas)
    return np.asarray(alphas), np.asarray(betas), len(alphas)


def semi_orthogonal(store: Basis, eps: float) -> bool:
    """Whether ``‖VᵀV − I‖₂ ≤ s √eps``: what ``|q_jᵀ q_k| ≤ √eps`` for all ``j ≠ k`` implies."""
    return gram_deviation(store.matrix)[1] <= store.size * np.sqrt(eps)


def _run(
    op: LinearOperator, v0: Array, num_steps: int, partial: bool
) -> tuple[list[float], list[float], Basis]:
    """The Lanczos steps themselves: ``α``, ``β`` and the basis."""
    xp = op.xp
    eps = _xp.eps(xp, op.dtype)
    q = v0 / xp.linalg.vector_norm(v0)
    store = Basis(q, num_steps)
    store.append(q)
    alphas: list[float] = []
    betas: list[float] = []
    omega = Omega(eps, int(op.shape[0])) if partial else None
    for step in range(num_steps):
        w = op.matvec(q)
        if omega is None:
            w, coef = project_out(store, w)
            alphas.append(float(coef[-1]))
            beta = float(xp.linalg.vector_norm(w))
        else:
            w, beta, _ = recurrence_step(store, w, alphas, betas, omega)
        scale = max(abs(a) for a in alphas) + (max(betas) if betas else 0.0)
        if step == num_steps - 1 or beta <= 1e3 * eps * max(scale, 1e-300):
            break
        betas.append(beta)
        q = w / beta
        store.append(q)
    return alphas, betas, store
