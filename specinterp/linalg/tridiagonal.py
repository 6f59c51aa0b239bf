"""Plain Lanczos tridiagonalisation, fully or partially reorthogonalised (:ref:`theory-slq`).

The run behind stochastic Lanczos quadrature: one starting vector, no restarts, the diagonal
and off-diagonal of ``T`` returned to the host. Partial reorthogonalisation follows Simon (1984)
(:ref:`theory-lanczos`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from .. import _xp
from ._orth import Basis, project_out
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
    full reorthogonalisation to that order, at a fraction of the basis reads.
    """
    if reorthogonalize not in ("full", "partial"):
        raise ValueError(f"reorthogonalize must be 'full' or 'partial'; got {reorthogonalize!r}")
    xp = op.xp
    eps = _xp.eps(xp, op.dtype)
    q = v0 / xp.linalg.vector_norm(v0)
    store = Basis(q, num_steps)
    store.append(q)
    alphas: list[float] = []
    betas: list[float] = []
    omega = _Omega(eps) if reorthogonalize == "partial" else None
    for step in range(num_steps):
        w = op.matvec(q)
        if omega is None:
            w, coef = project_out(store, w)
            alpha = float(coef[-1])
        else:
            if step > 0:
                w = w - betas[-1] * store.column(step - 1)
            alpha = float(xp.vecdot(q, w))
            w = w - alpha * q
        alphas.append(alpha)
        if omega is not None and omega.needs_full(alphas, betas, float(xp.linalg.vector_norm(w))):
            w, _ = project_out(store, w)
        beta = float(xp.linalg.vector_norm(w))
        scale = max(abs(a) for a in alphas) + (max(betas) if betas else 0.0)
        if step == num_steps - 1 or beta <= 1e3 * eps * max(scale, 1e-300):
            break
        betas.append(beta)
        q = w / beta
        store.append(q)
    return np.asarray(alphas), np.asarray(betas), len(alphas)


class _Omega:
    """Simon's estimate of the loss of orthogonality ``ω_{j+1,k} ≈ q_{j+1}ᵀ q_k``.

    ``ω_{j+1,k} β_j = β_k ω_{j,k+1} + (α_k − α_j) ω_{j,k} + β_{k−1} ω_{j,k−1} − β_{j−1} ω_{j−1,k}``
    plus a rounding term ``± eps (β_k + β_j)`` (Simon 1984). A full
    reorthogonalisation is due when ``max_k |ω_{j+1,k}| > √eps``; the vector after it is
    reorthogonalised too (the recurrence's two previous rows both carry the loss), and the
    estimates restart at ``eps``.
    """

    def __init__(self, eps: float) -> None:
        self.eps, self.limit = eps, math.sqrt(eps)
        self.prev = np.zeros(0)  # ω_{j−1, 0..j−1}
        self.cur = np.ones(1)  # ω_{j, 0..j}
        self.again = False
        self.full_count = 0

    def needs_full(self, alphas: list[float], betas: list[float], beta_new: float) -> bool:
        j = len(alphas) - 1  # the new vector is q_{j+1}, with β_j = beta_new (before any pass)
        if self.again:
            decision = True
        elif j == 0 or beta_new == 0.0:
            decision = False
        else:
            a, b = np.asarray(alphas), np.asarray(betas)  # b[k] = β_k between q_k and q_{k+1}
            norm_t = float(np.max(np.abs(a)) + 2 * np.max(b))
            k = np.arange(j + 1)
            up = np.append(self.cur[1:], 0.0)  # ω_{j,k+1}, with ω_{j,j+1} = 0
            down = np.concatenate([[0.0], self.cur[:-1]])  # ω_{j,k−1}
            b_k = np.append(b, 0.0)[k]
            b_km1 = np.concatenate([[0.0], b])[k]
            prev = np.append(self.prev, 0.0)[: j + 1]
            val = b_k * up + (a[k] - a[j]) * self.cur + b_km1 * down - b[j - 1] * prev
            # rounding of step j: ± eps (β_k + β_j) (Simon 1984, eq. 2.11)
            val = (val + np.sign(val) * self.eps * (b_k + beta_new)) / beta_new
            val[j] = self.eps * norm_t / beta_new  # q_{j+1} against q_j: local rounding only
            decision = bool(np.max(np.abs(val)) > self.limit)
            self.prev, self.cur = self.cur, np.append(val, 1.0)
        if decision:
            self.full_count += 1
            self.again = not self.again
            self.prev = np.append(np.full(j, self.eps), 1.0)  # ω_{j,·}, with ω_{jj} = 1
            self.cur = np.append(np.full(j + 1, self.eps), 1.0)
        elif j == 0:
            self.prev, self.cur = self.cur, np.array([self.eps, 1.0])
        return decision
