"""The missed-eigenvalue check behind ``eigsh(..., verify=True)`` (docs: numerical guarantees).

A single-vector Krylov space ``K_s(A, v)`` holds exactly one direction of every eigenspace, so
a Lanczos run sees one copy of a repeated eigenvalue and, for a tight cluster, about one member
until the gaps are resolved: its Ritz pairs are accurate eigenpairs (small residuals) and yet
not the ``k`` wanted ones. The check asks the question directly. With the returned vectors
``X`` locked, it runs plain Lanczos on ``P A P`` (``P = I − X Xᵀ``) from a fresh random vector
``z ⊥ X`` and stops at the first of:

* **found** — a Ritz value lies beyond the threshold ``a`` (the ``k``-th wanted value) by more
  than the tolerance. Ritz values lie inside the spectrum (T9), so ``P A P`` has an eigenvalue
  that belongs among the wanted ones: it was missed.
* **verified by quadrature** — the Gauss–Radau rule of ``z``'s spectral measure with a node
  prescribed at ``a`` puts weight ``w_a ≤ π δ² / (2(n' − 1))`` there. By the
  Chebyshev–Markov–Stieltjes inequality ``w_a`` bounds the measure of ``[a, ∞)`` (take the
  polynomial ``Π(x − x_i)² / Π(a − x_i)²`` over the free nodes: ≥ 1 on ``[a, ∞)``, ≥ 0
  everywhere, integrated exactly by the rule). An eigenvector ``u`` of ``P A P`` beyond ``a``
  would give ``(uᵀz)² ≤ w_a``; for ``z`` uniform on the unit sphere of the ``n'``-dimensional
  complement ``(uᵀz)² ~ Beta(½, (n'−1)/2)``, whose distribution function at ``w`` is at most
  ``√(2 w (n'−1)/π)`` (Wendel's inequality ``Γ(b+½)/Γ(b) ≤ √b``). So a missed eigenvalue
  escapes with probability at most ``δ``.
* **verified by convergence** — the extreme Ritz value on that side has met the tolerance and
  lies on the near side of ``a``: the deflated operator's extreme eigenvalue is known (as
  reliably as the first run knew ``λ_max``).

The Radau weight is read off the tridiagonal ``T_s`` and the next off-diagonal ``β_s``
(Golub 1973): with ``u = (T_s − a I)⁻¹ e_s``, the eigenvector of the extended Jacobi matrix at
``a`` is ``(−β_s u, 1)``, so ``w_a = (β_s u_1)² / (β_s² ‖u‖² + 1)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _xp
from ._orth import Basis, project_out
from ._ritz import threshold
from .operator import LinearOperator

Array = Any

#: default probability that one missed eigenvector escapes the check
MISS_PROBABILITY = 1e-6

#: Bytes the check's Krylov basis may hold (``SPECINTERP_CHECK_BYTES``, default 1 GiB): the
#: check never stores more vectors than fit, nor fewer than the solver's own basis.
CHECK_BYTES = int(os.environ.get("SPECINTERP_CHECK_BYTES", 2**30))


#: Steps the check's basis has room for before it grows: most checks stop within a few
SHORT_CHECK = 8


def step_budget(op: LinearOperator, m: int, wanted: int) -> int:
    """Steps the check may take: ``wanted``, capped by :data:`CHECK_BYTES` but at least ``m``."""
    per_vector = max(1, op.shape[0] * (op.xp.finfo(op.dtype).bits // 8))
    return max(m, min(wanted, CHECK_BYTES // per_vector))


@dataclass(frozen=True)
class Sides:
    """Thresholds of the wanted part of the spectrum: ``> hi`` and ``< lo`` would be missed."""

    hi: float | None
    lo: float | None
    margin: float

    def found(self, theta: np.ndarray) -> bool:
        """Whether a Ritz value lies beyond a threshold by more than the margin."""
        above = self.hi is not None and float(theta.max()) > self.hi + self.margin
        below = self.lo is not None and float(theta.min()) < self.lo - self.margin
        return above or below

    def shift(self) -> float:
        """A value on the unwanted side of both thresholds (where locked vectors are parked)."""
        if self.hi is not None and self.lo is not None:
            return 0.5 * (self.hi + self.lo)
        if self.hi is not None:
            return self.hi - max(1.0, abs(self.hi))
        assert self.lo is not None
        return self.lo + max(1.0, abs(self.lo))


def sides(values: np.ndarray, which: str, k: int, margin: float) -> Sides:
    """The thresholds a missed eigenvalue would have to pass for ``which``."""
    if which == "LA":
        return Sides(float(values.min()), None, margin)
    if which == "SA":
        return Sides(None, float(values.max()), margin)
    if which == "LM":
        a = float(np.abs(values).min())
        return Sides(a, -a, margin)
    # BE: the ceil(k/2) largest and the floor(k/2) smallest
    asc = np.sort(values)
    top, bottom = asc[k // 2 :], asc[: k // 2]
    return Sides(float(top.min()), float(bottom.max()) if bottom.size else None, margin)


def complement(x: Array, v: Array) -> Array:
    """``P v = v − X (Xᵀ v)``: the part of ``v`` orthogonal to the orthonormal columns ``X``."""
    return v - x @ (x.T @ v)


def deflated(op: LinearOperator, x: Array, shift: float) -> LinearOperator:
    """``P A P + shift · X Xᵀ`` with ``P = I − X Xᵀ`` (``X`` orthonormal columns)."""

    def mv(v: Array) -> Array:
        pv = complement(x, v)
        return complement(x, op.matvec(pv)) + shift * (v - pv)

    return LinearOperator(op.shape, mv, dtype=op.dtype, xp=op.xp, device=op.device, symmetric=True)


def right_deflated(op: LinearOperator, x: Array) -> LinearOperator:
    """``A P`` with ``P = I − X Xᵀ`` on the input side (its adjoint is ``P Aᵀ``)."""
    return LinearOperator(
        op.shape,
        lambda v: op.matvec(complement(x, v)),
        rmatvec=lambda u: complement(x, op.rmatvec(u)),
        dtype=op.dtype,
        xp=op.xp,
        device=op.device,
    )


def outside(x: Array, v: Array) -> np.ndarray:
    """Host mask of the columns of ``v`` that lie mostly outside ``span X`` (``‖Xᵀ v_j‖² < ½``).

    A run on a deflated operator returns, besides the pairs of the complement, pairs of its
    parking part (``shift · X Xᵀ``, or the null space ``X`` of ``A P``) when the complement has
    fewer wanted values than asked for. Those lie in ``span X``: they are not new eigenvectors
    of ``A``, and locking them would make the locked block linearly dependent.
    """
    xp = _xp.namespace(v)
    inside = xp.sum((x.T @ v) ** 2, axis=0)
    return _xp.to_numpy(inside).astype(np.float64) < 0.5


def columns(a: Array, index: Any) -> Array:
    """The columns ``index`` of ``a`` (last axis), in that order; any namespace."""
    xp = _xp.namespace(a)
    return xp.stack([a[..., int(i)] for i in index], axis=-1)


def radau_weight(alpha: np.ndarray, beta: np.ndarray, beta_next: float, node: float) -> float:
    """Gauss–Radau weight at a prescribed ``node`` above every eigenvalue of ``T``.

    ``alpha`` (s) and ``beta`` (s − 1) define the Jacobi matrix ``T``; ``beta_next`` is the
    off-diagonal that would follow. A bound on the spectral measure of ``[node, ∞)``.
    """
    s = alpha.size
    t = np.diag(alpha - node) + np.diag(beta, 1) + np.diag(beta, -1)
    e = np.zeros(s)
    e[-1] = 1.0
    u = np.linalg.solve(t, e)
    return float((beta_next * u[0]) ** 2 / (beta_next**2 * float(u @ u) + 1.0))


def check(
    op: LinearOperator,
    x: Array,
    side: Sides,
    *,
    tol: float,
    rng: _xp.Generator,
    max_steps: int,
    miss_probability: float = MISS_PROBABILITY,
    warm: Array | None = None,
    spare: Basis | None = None,
) -> tuple[str, int]:
    """Run the check; return ``("found" | "verified" | "unverified", products used)``.

    ``warm`` (optional) is a vector the start is tilted towards — the first run's best
    unwanted Ritz vector, so that the deflated operator's extreme eigenvalue converges in
    fewer steps. The start is then ``ŵ + g/√n'`` (``n' ≥ 64``) with ``ŵ`` the unit projection
    of ``warm`` and ``g`` standard Gaussian in the complement, and the weight cap is ten times
    smaller. The random part alone keeps the miss probability: for a unit ``u`` of the
    complement, ``uᵀz = uᵀŵ + γ/√n'`` with ``γ ~ N(0, 1)``, and a shifted Gaussian is no more
    concentrated near 0 than a centred one (Anderson's inequality), so
    ``P(|uᵀz| ≤ t) ≤ t √(2n'/π)``; with ``‖z‖ ≤ 1 + ‖g‖/√n' ≤ 3`` (it fails with probability
    ``P(χ²_{n'} > 4n') ≤ e^{−0.8 n'} < 10⁻²²``) an escape needs ``|uᵀz| ≤ 3 √w_a``, which has
    probability at most ``3 √(2 n' w_a/π) ≤ δ √(0.9 n'/(n' − 1)) < δ``.

    ``spare`` (optional) is a finished basis whose storage the check's basis may take over
    (:meth:`~specinterp.linalg._orth.Basis.release`); neither ``x`` nor ``warm`` may alias it.
    """
    xp = op.xp
    n, q = op.shape[0], int(x.shape[1])
    free = n - q
    if free <= 0:
        return "verified", 0
    eps = _xp.eps(xp, op.dtype)
    weight_cap = math.pi * miss_probability**2 / (2 * max(free - 1, 1))
    # the locked columns lead the basis: one orthogonalisation pass (DGKS, repeated only when
    # needed) keeps each new direction orthogonal to both, and since q ⊥ X, P A P q = P A q.
    # The basis takes over the solver's finished one where it fits (pages already in memory),
    # else starts short and grows (most checks take a few steps).
    steps = min(max_steps, free)
    store = Basis(x[:, 0], q + min(steps, SHORT_CHECK) + 1, limit=q + steps + 1, reuse=spare)
    for j in range(q):
        store.append(x[:, j])
    z = project_out(store, rng.normal((n,), dtype=op.dtype))[0]
    if warm is not None and free >= 64:
        w = project_out(store, warm)[0]
        w_norm = float(xp.linalg.vector_norm(w))
        if w_norm > 0:
            z = w / w_norm + z / math.sqrt(free)
            weight_cap /= 10.0
    store.append(z / xp.linalg.vector_norm(z))
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(steps):
        w = op.matvec(store.column(store.size - 1))
        w, coef = project_out(store, w)
        alphas.append(float(coef[-1]))
        beta = float(xp.linalg.vector_norm(w))
        a, b = np.asarray(alphas), np.asarray(betas)
        theta, y = np.linalg.eigh(np.diag(a) + np.diag(b, 1) + np.diag(b, -1))
        if side.found(theta):
            return "found", step + 1
        scale = float(np.max(np.abs(theta)))
        invariant = beta <= 1e3 * eps * max(scale, 1e-300)
        ok = [
            invariant or _side_ok(theta, y, beta, a, b, node, sign, tol, eps, weight_cap)
            for node, sign in ((side.hi, 1.0), (side.lo, -1.0))
            if node is not None
        ]
        if all(ok):
            return "verified", step + 1
        if invariant:
            break
        betas.append(beta)
        store.append(w / beta)
    return ("verified" if store.size - q >= free else "unverified"), len(alphas)


def _side_ok(
    theta: np.ndarray,
    y: np.ndarray,
    beta: float,
    alpha: np.ndarray,
    betas: np.ndarray,
    node: float,
    sign: float,
    tol: float,
    eps: float,
    weight_cap: float,
) -> bool:
    """Whether no missed eigenvalue lies beyond ``node`` on the side ``sign`` (+1 above)."""
    i = int(np.argmax(sign * theta))
    t_norm = float(np.max(np.abs(theta)))
    if beta * abs(y[-1, i]) <= float(threshold(theta[i : i + 1], t_norm, tol, eps)[0]):
        return True  # the extreme Ritz value converged on the near side of the threshold
    if sign * theta[i] >= sign * node:
        return False  # Radau needs its node beyond every Ritz value
    return radau_weight(sign * alpha, betas, beta, sign * node) <= weight_cap
