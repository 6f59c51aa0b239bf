"""Stochastic trace estimation from products (:ref:`theory-algorithms`).

* Hutchinson (1989): ``tr A ≈ (1/m) Σ z_jᵀ A z_j`` with Rademacher ``z_j``.
* Hutch++ (Meyer, Musco, Musco & Woodruff 2021): exact trace on a sketched dominant subspace
  plus Hutchinson on the deflated remainder; error ``O(1/m)`` for PSD ``A`` instead of
  ``O(1/√m)``.
* XTrace (Epperly, Tropp & Webber 2024): the exchangeable version of Hutch++ — every probe is
  used both for the subspace and for the remainder, by leaving it out of the subspace in turn.
  This module evaluates the leave-one-out projections in the small sketch space: with
  ``A Ω = Q R``, the basis without column ``i`` spans ``Q (I − s_i s_iᵀ)`` where ``s_i`` is the
  normalised ``i``-th column of ``R⁻ᵀ``.

All three are unbiased for any square ``A``; the standard error is that of the mean of the
independent (Hutchinson, Hutch++) or exchangeable (XTrace) per-probe terms.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from .. import _xp
from ..errors import ShapeError
from ._scaling import SelfScaling, unscale
from .operator import LinearOperator, aslinearoperator
from .results import TraceResult

Array = Any
Method = Literal["hutchinson", "hutch++", "xtrace"]

__all__ = ["trace"]


def _mean_and_stderr(terms: np.ndarray) -> tuple[float, float]:
    return float(np.mean(terms)), float(np.std(terms, ddof=1) / math.sqrt(terms.size))


#: probes per product block: Hutchinson holds ``2 · _BLOCK · n`` entries whatever the budget
_BLOCK = 64


def _probes(rng: _xp.Generator, n: int, k: int, dtype: Any, kind: str = "rademacher") -> Array:
    """``k`` probes as the columns of ``(n, k)``, drawn row-major (one contiguous row each).

    Drawing a probe per row makes the stream independent of how a budget is split in blocks.
    """
    draw = rng.rademacher if kind == "rademacher" else rng.normal
    return draw((k, n), dtype=dtype).T


def _hutchinson_terms(
    op: LinearOperator, m: int, rng: _xp.Generator, q: Array | None = None
) -> np.ndarray:
    """``zⱼᵀ A zⱼ`` for ``m`` Rademacher probes (projected off ``span q`` if given), in blocks."""
    xp, n = op.xp, op.shape[0]
    terms = []
    for start in range(0, m, _BLOCK):
        z = _probes(rng, n, min(_BLOCK, m - start), op.dtype)
        if q is not None:
            z = z - q @ (q.T @ z)
        terms.append(_xp.to_numpy(xp.sum(z * op.matmat(z), axis=0)).astype(np.float64))
    return np.concatenate(terms)


def trace(
    op: LinearOperator | Array,
    *,
    method: Method = "xtrace",
    num_matvecs: int = 60,
    seed: int | np.random.Generator | None = 0,
) -> TraceResult:
    """Estimate ``tr A`` of a square operator with ``num_matvecs`` products.

    Parameters
    ----------
    op : LinearOperator, dense square array, or SciPy sparse matrix or operator
    method : {"hutchinson", "hutch++", "xtrace"}
    num_matvecs : int
        Product budget: Hutchinson ≥ 2, Hutch++ ≥ 6 (thirds), XTrace ≥ 4 (halves).
    seed : int, Generator or None
        Seeds the Rademacher / Gaussian probes (same probes on every backend).

    Returns
    -------
    TraceResult
        ``estimate``, ``stderr`` and the number of products actually used.

    """
    op = aslinearoperator(op)
    if op.shape[0] != op.shape[1]:
        raise ShapeError(f"the trace needs a square operator; got shape {op.shape}")
    rng = _xp.as_generator(seed, op.xp, op.device)
    m = int(num_matvecs)
    scaled = SelfScaling(op)  # no over- or underflow inside, whatever the operator's norm
    res = _estimate(scaled, method, m, rng)
    c = unscale(scaled.scale)
    return TraceResult(res.estimate * c, res.stderr * c, res.num_matvecs)


def _estimate(op: LinearOperator, method: str, m: int, rng: _xp.Generator) -> TraceResult:
    if method not in ("hutchinson", "hutch++", "xtrace"):
        raise ValueError(f"method must be 'hutchinson', 'hutch++' or 'xtrace'; got {method!r}")
    if method == "hutchinson":
        if m < 2:
            raise ValueError("hutchinson needs num_matvecs ≥ 2 for a standard error")
        est, err = _mean_and_stderr(_hutchinson_terms(op, m, rng))
        return TraceResult(est, err, m)
    if method == "hutch++":
        return _hutchpp(op, m, rng)
    return _xtrace(op, m, rng)


def _hutchpp(op: LinearOperator, m: int, rng: _xp.Generator) -> TraceResult:
    if m < 6:
        raise ValueError(
            "hutch++ needs num_matvecs ≥ 6 (a third each for sketch, exact part, probes)"
        )
    xp, n = op.xp, op.shape[0]
    s = min(m // 3, n)
    g = m - 2 * s
    q, _ = xp.linalg.qr(op.matmat(_probes(rng, n, s, op.dtype)))
    exact = float(xp.sum(q * op.matmat(q)))
    mean, err = _mean_and_stderr(_hutchinson_terms(op, g, rng, q))
    return TraceResult(exact + mean, err, 2 * s + g)


def _xtrace(op: LinearOperator, m: int, rng: _xp.Generator) -> TraceResult:
    if m < 4:
        raise ValueError("xtrace needs num_matvecs ≥ 4 (two probes, each used twice)")
    xp, n = op.xp, op.shape[0]
    s = min(m // 2, n - 1)
    if s < 2:  # n ≤ 2: no leave-one-out pair exists, and n ≤ m products give the exact trace
        eye = xp.eye(n, dtype=op.dtype, device=op.device)
        return TraceResult(float(xp.sum(xp.linalg.diagonal(op.matmat(eye)))), 0.0, n)
    omega = _probes(rng, n, s, op.dtype, kind="normal")
    y = op.matmat(omega)
    q, r = xp.linalg.qr(y)
    z = op.matmat(q)
    h = q.T @ z  # Qᵀ A Q
    tr_h = xp.sum(xp.linalg.diagonal(h))
    diag_r = np.abs(_xp.to_numpy(xp.linalg.diagonal(r)).astype(np.float64))
    if diag_r.min() <= n * _xp.eps(xp, op.dtype) * max(diag_r.max(), np.finfo(float).tiny):
        # the sketch has rank < s, so span Q holds all of range(A): tr A = tr(Qᵀ A Q) exactly
        return TraceResult(float(tr_h), 0.0, 2 * s)
    # s_i ∝ R⁻ᵀ e_i is orthogonal to every column of R but the i-th
    # (the columns are normalised below, so R is scaled first: R⁻¹ of a tiny R overflows)
    s_mat = xp.linalg.inv(r / float(diag_r.max())).T
    s_mat = s_mat / xp.linalg.vector_norm(s_mat, axis=0)
    w = q.T @ omega  # coordinates of the probes in span Q
    c = xp.sum(s_mat * w, axis=0)  # s_iᵀ w_i
    g = w - s_mat * c  # (I − s_i s_iᵀ) w_i, column by column
    omega_perp = omega - q @ g  # (I − P_i) ω_i
    a_omega_perp = y - z @ g  # A (I − P_i) ω_i
    sh_s = xp.sum(s_mat * (h @ s_mat), axis=0)  # s_iᵀ H s_i
    quad = xp.sum(omega_perp * a_omega_perp, axis=0)
    # ω'ᵀ A ω' with ω' = (I − P_i) ω_i: its part inside span Q must use (I − P_i) on the left
    # too; ω_perp is already (I − P_i) ω_i, so ω_perpᵀ A ω_perp is the remainder term.
    ests = _xp.to_numpy(tr_h - sh_s + quad).astype(np.float64)
    est, err = _mean_and_stderr(ests)
    return TraceResult(est, err, 2 * s)
