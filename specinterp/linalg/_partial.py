"""Partial reorthogonalisation for the Lanczos runs (Simon 1984; :ref:`theory-lanczos-partial`).

* :class:`Omega` — Simon's recurrence for the loss of orthogonality ``ω_{jk} ≈ q_jᵀ q_k``,
  which says when a full reorthogonalisation is due (shared with the SLQ tridiagonalisation).
* :func:`first_cycle` — the first cycle of :func:`~specinterp.linalg.eigsh` at block size 1:
  the three-term recurrence, a full pass against the basis only when ``ω`` calls for one. Every
  coefficient that is removed is recorded, so ``A V = V H + w e_sᵀ`` holds to rounding whatever
  the orthogonality of ``V``.
* :func:`rayleigh_ritz` — the exact Rayleigh–Ritz on ``span V`` of that (semi-orthogonal)
  basis from its measured Gram matrix ``G = VᵀV = L Lᵀ``: with ``N = V L⁻ᵀ`` orthonormal,
  ``NᵀAN = L⁻¹ (G H + (Vᵀw) e_sᵀ) L⁻ᵀ``, and the residual of a Ritz pair ``(θ, N z)`` is
  ``‖w_⊥‖ |e_sᵀ L⁻ᵀ z|`` plus the asymmetry of the computed projection. Nothing rests on how
  well ``ω`` predicted the orthogonality: the only condition is that ``G`` be well conditioned
  (:data:`GRAM_LIMIT`), which a semi-orthogonal basis is by a wide margin.
* :func:`finish_cycle` — hands :func:`~specinterp.linalg.eigsh` the finished run, the state of
  a thick restart, or (past the guard) the products the cycle spent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _xp
from ._orth import Basis, normalize_or_restart, project_out
from ._ritz import Run, early_converged, finish, order, threshold
from .operator import LinearOperator

Array = Any

__all__ = [
    "GRAM_LIMIT",
    "FirstCycle",
    "Omega",
    "Projection",
    "finish_cycle",
    "first_cycle",
    "gram_deviation",
    "rayleigh_ritz",
    "recurrence_step",
]

#: Largest ``‖VᵀV − I‖₂`` the Rayleigh–Ritz accepts (then ``cond(G) ≤ 1.5``); a basis kept
#: semi-orthogonal has ``‖VᵀV − I‖₂ ≤ s √eps`` (``≈ 5e-3`` at 20 float32 steps).
GRAM_LIMIT = 0.2


class Omega:
    """Simon's estimate of the loss of orthogonality ``ω_{j+1,k} ≈ q_{j+1}ᵀ q_k``.

    ``ω_{j+1,k} β_j = β_k ω_{j,k+1} + (α_k − α_j) ω_{j,k} + β_{k−1} ω_{j,k−1} − β_{j−1} ω_{j−1,k}``
    plus a rounding term ``± u ‖T‖`` (Simon 1984: the local error of a step is
    ``O(eps ‖A‖)``), with ``u = eps √n``: a dot product or update of length-``n`` vectors
    carries rounding that grows like ``√n`` (in float32 at ``n = 4·10⁵`` the loss after one
    step measured ~40 ``eps ‖A‖``; with ``u = eps`` the estimate stayed below ``√eps`` while
    the basis lost all orthogonality). A full reorthogonalisation is due when
    ``max_k |ω_{j+1,k}| > √eps``; the vector after it is reorthogonalised too (the
    recurrence's two previous rows both carry the loss), and the estimates restart at ``u``.
    """

    def __init__(self, eps: float, n: int = 1) -> None:
        self.limit = math.sqrt(eps)
        self.unit = eps * math.sqrt(max(int(n), 1))  # the rounding of one step's vector work
        self.prev = np.zeros(0)  # ω_{j−1, 0..j−1}
        self.cur = np.ones(1)  # ω_{j, 0..j}
        self.again = False
        self.full_count = 0

    def needs_full(self, alphas: list[float], betas: list[float], beta_new: float) -> bool:
        """Whether ``q_{j+1}`` (not yet normalised, ``‖·‖ = beta_new``) needs a full pass."""
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
            # rounding of step j: ± u ‖T‖ (Simon 1984's O(eps ‖A‖), with u = eps √n)
            val = (val + np.sign(val) * self.unit * norm_t) / beta_new
            val[j] = self.unit * norm_t / beta_new  # q_{j+1} against q_j: local rounding only
            decision = bool(np.max(np.abs(val)) > self.limit)
            self.prev, self.cur = self.cur, np.append(val, 1.0)
        if decision:
            self.full_count += 1
            self.again = not self.again
            self.reset(j)
        elif j == 0:
            self.prev, self.cur = self.cur, np.array([self.unit, 1.0])
        return decision

    def reset(self, j: int) -> None:
        """``q_{j+1}`` is orthogonal to the basis to working precision: estimates back to ``u``."""
        self.prev = np.append(np.full(j, self.unit), 1.0)  # ω_{j,·}, with ω_{jj} = 1
        self.cur = np.append(np.full(j + 1, self.unit), 1.0)


def recurrence_step(
    store: Basis, w: Array, alphas: list[float], betas: list[float], omega: Omega
) -> tuple[Array, float, np.ndarray | None]:
    """One partially reorthogonalised Lanczos step on ``w = A q_j`` (``q_j`` the newest column).

    Removes ``β_{j−1} q_{j−1}`` and ``α_j q_j`` (appending ``α_j``), then runs a full pass against
    the basis where ``omega`` calls for one. Returns the new residual vector, its norm and the
    full pass' coefficients ``Vᵀw`` (``None`` without a pass). Shared by SLQ's
    :func:`~.tridiagonal.lanczos_tridiagonal` and :func:`first_cycle`.
    """
    xp = _xp.namespace(w)
    j = store.size - 1
    q = store.column(j)
    if j > 0:
        w = w - betas[-1] * store.column(j - 1)
    alpha = float(q @ w)  # (array-API vecdot is 20x slower on torch)
    w = w - alpha * q
    alphas.append(alpha)
    beta = float(xp.linalg.vector_norm(w))
    coef = None
    if omega.needs_full(alphas, betas, beta):
        w, coef = project_out(store, w)
        beta = float(xp.linalg.vector_norm(w))
    return w, beta, coef


@dataclass
class FirstCycle:
    """A partially reorthogonalised Lanczos cycle: ``A V = V H + w e_sᵀ`` (to rounding)."""

    store: Basis  # the s columns of V (semi-orthogonal)
    hess: np.ndarray  # H (s × s, host float64): tridiagonal plus the recorded pass coefficients
    w: Array  # the residual vector of the last step
    ref: float  # ‖A q_s‖ (estimated): the scale against which w counts as zero
    matvecs: int


def first_cycle(
    op: LinearOperator,
    start: Array,
    k: int,
    which: str,
    tol: float,
    m: int,
    rng: Any,
) -> FirstCycle:
    """Lanczos from ``start`` with partial reorthogonalisation, up to ``m`` steps.

    Stops early when the cheap test (:func:`~._ritz.early_converged` on the tridiagonal part)
    says the ``k`` wanted pairs meet ``tol``; the caller decides convergence rigorously with
    :func:`rayleigh_ritz`. A vanished direction (invariant subspace) is replaced by a random
    one orthogonal to the basis, as in the fully reorthogonalised run.
    """
    xp = op.xp
    n = op.shape[0]
    eps = _xp.eps(xp, op.dtype)
    q = start / xp.linalg.vector_norm(start)
    store = Basis(q, m)
    alphas: list[float] = []
    betas: list[float] = []
    hess = np.zeros((m, m))
    omega = Omega(eps, n)
    matvecs = 0
    while True:
        j = store.size
        store.append(q)
        w, beta, coef = recurrence_step(store, op.matvec(q), alphas, betas, omega)
        matvecs += 1
        hess[j, j] = alphas[-1]
        if coef is not None:
            hess[: j + 1, j] += coef
        s = j + 1
        tri = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        prev = betas[-1] if betas else 0.0
        ref = math.sqrt(prev**2 + alphas[-1] ** 2 + beta**2)
        if s in (n, m) or (k <= s and early_converged(tri, w, which, k, tol, eps)):
            return FirstCycle(store, hess[:s, :s], w, ref, matvecs)
        q, beta = normalize_or_restart(store, w, ref, rng)
        if beta == 0.0:  # a fresh direction, orthogonal to the basis by a full pass
            omega.reset(j)
        betas.append(beta)
        hess[j + 1, j] = beta
        hess[j, j + 1] = beta


@dataclass
class Projection:
    """Ritz values ``θ``, coefficients ``C`` of the Ritz vectors ``V C``, and residual norms."""

    theta: np.ndarray
    coeffs: np.ndarray
    residuals: np.ndarray
    w_coeffs: np.ndarray  # w − V·w_coeffs is w's part orthogonal to span V (what a restart keeps)


def gram_deviation(basis: Array) -> tuple[np.ndarray, float]:
    """The Gram matrix ``G = VᵀV`` of the ``(n, s)`` basis (host float64) and ``‖G − I‖₂``."""
    gram = _xp.to_numpy(basis.T @ basis).astype(np.float64)
    return gram, float(np.linalg.norm(gram - np.eye(gram.shape[0]), 2))


def rayleigh_ritz(cycle: FirstCycle) -> Projection | None:
    """The Rayleigh–Ritz of ``A`` on ``span V`` (see the module docstring).

    ``None`` if ``G`` is too far from ``I`` (:data:`GRAM_LIMIT`): then the caller falls back to
    full reorthogonalisation.
    """
    basis = cycle.store.matrix
    xp = _xp.namespace(basis)
    s = int(basis.shape[1])
    gram, deviation = gram_deviation(basis)
    if deviation > GRAM_LIMIT:
        return None
    low = np.linalg.cholesky(gram)  # G = L Lᵀ, N = V L⁻ᵀ
    vtw = _xp.to_numpy(basis.T @ cycle.w).astype(np.float64)
    e_s = np.eye(s)[-1]
    left = np.linalg.solve(low, gram @ cycle.hess + np.outer(vtw, e_s))  # L⁻¹ VᵀAV
    proj = np.linalg.solve(low, left.T).T  # L⁻¹ VᵀAV L⁻ᵀ = NᵀAN (to rounding)
    sym = 0.5 * (proj + proj.T)
    theta, z = np.linalg.eigh(sym)
    a = np.linalg.solve(low, vtw)  # Nᵀ w
    w_norm = float(xp.linalg.vector_norm(cycle.w))
    perp = math.sqrt(max(w_norm**2 - float(a @ a), 0.0))
    last = np.linalg.solve(low, e_s)  # L⁻¹ e_s
    skew = np.linalg.norm(0.5 * (proj - proj.T) @ z, axis=0)
    residuals = perp * np.abs(last @ z) + skew
    coeffs = np.linalg.solve(low.T, z)  # V L⁻ᵀ z = N z
    return Projection(theta, coeffs, residuals, np.linalg.solve(low.T, a))


def finish_cycle(
    op: LinearOperator,
    cycle: FirstCycle,
    k: int,
    which: str,
    tol: float,
    m: int,
    want_vectors: bool,
    max_iter: int,
) -> Run | tuple[Basis, np.ndarray, list[tuple[Array, float, int]], int] | int:
    """What follows a cycle of :func:`first_cycle`, by :func:`rayleigh_ritz`.

    Returns the finished run when it converged (or no restart is allowed); otherwise the state
    of a thick restart from its best Ritz vectors, orthonormal and exact to rounding — the
    fully reorthogonalised iteration goes on from there; or, where the basis' Gram matrix is
    too far from ``I``, only the number of products spent.
    """
    n = op.shape[0]
    eps = _xp.eps(op.xp, op.dtype)
    rr = rayleigh_ritz(cycle)
    if rr is None:
        return cycle.matvecs
    size = cycle.store.size
    t_norm = float(np.max(np.abs(rr.theta)))
    want = order(rr.theta, which, k)
    thresh = threshold(rr.theta[want], t_norm, tol, eps)
    converged = bool(np.all(rr.residuals[want] <= thresh)) or size == n
    res = rr.residuals + size * eps * t_norm  # the rounding in V and in eigh (T9 rigorous)
    if converged or max_iter == 0:
        args = (res, which, k, converged, cycle.matvecs, size == n, want_vectors)
        return finish(cycle.store, rr.theta, rr.coeffs, *args)
    basis = cycle.store.matrix
    w_perp = cycle.w - basis @ _xp.from_host(rr.w_coeffs, basis)
    keep = order(rr.theta, which, min(k + (m - k) // 2, m - 1))
    cycle.store.rotate(rr.coeffs[:, keep])
    return cycle.store, np.diag(rr.theta[keep]), [(w_perp, cycle.ref, -1)], cycle.matvecs
