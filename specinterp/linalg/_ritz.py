"""Ritz pair bookkeeping: which are wanted, the cheap stopping test, the finished run.

``order`` picks the wanted Ritz values, ``early_converged`` is the convergence test of a
Lanczos step, and ``finish`` records a finished run (its wanted pairs in output order). Shared
by the thick-restart eigensolver (:mod:`.lanczos`) and its partially reorthogonalised
first cycle (:mod:`._partial`). Theory: :ref:`theory-lanczos`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _xp

Array = Any

__all__ = ["Run", "early_converged", "finish", "order", "output_order", "threshold"]


def order(theta: np.ndarray, which: str, k: int) -> np.ndarray:
    """Indices of the ``k`` best Ritz values for ``which``, best first."""
    if which == "LA":
        return np.argsort(-theta, kind="stable")[:k]
    if which == "SA":
        return np.argsort(theta, kind="stable")[:k]
    if which == "LM":
        return np.argsort(-np.abs(theta), kind="stable")[:k]
    # BE: alternate between the top and the bottom, one more from the top when k is odd
    asc = np.argsort(theta, kind="stable")
    picked: list[int] = []
    lo, hi = 0, len(asc) - 1
    while len(picked) < k and lo <= hi:
        picked.append(int(asc[hi]))
        hi -= 1
        if len(picked) < k and lo <= hi:
            picked.append(int(asc[lo]))
            lo += 1
    return np.asarray(picked, dtype=int)


def output_order(theta: np.ndarray, which: str) -> np.ndarray:
    if which == "LA":
        return np.argsort(-theta, kind="stable")
    if which == "LM":
        return np.argsort(-np.abs(theta), kind="stable")
    return np.argsort(theta, kind="stable")  # SA and BE: ascending


def threshold(values: np.ndarray, t_norm: float, tol: float, eps: float) -> np.ndarray:
    """The residual each wanted Ritz value must reach to count as converged.

    ``tol · max(|θ|, eps^{2/3} ‖T‖)`` (ARPACK's rule), but never below ``eps · ‖T‖``, the
    rounding of one product: a computed residual below it is noise, and asking for it made a
    float32 run for values near zero (an NTK's ``λ_min``) spend its restarts unconverged
    (:ref:`theory-lanczos`).
    """
    relative = tol * np.maximum(np.abs(values), eps ** (2 / 3) * t_norm)
    return np.maximum(relative, eps * t_norm)


def early_converged(
    t_mat: np.ndarray, w: Array, which: str, k: int, tol: float, eps: float
) -> bool:
    """Whether the wanted Ritz pairs already meet ``tol`` before the basis is full.

    At block size 1 the only residual column of ``(I − VVᵀ) A V`` is the newest image ``w``,
    so the residual of the Ritz pair ``(θ, V y)`` is ``‖w‖ · |y_last|`` — an ``eigh`` of the
    small ``T`` and one vector norm per step, against a product with ``A`` saved for every
    step not taken. The bound that is reported is recomputed in full afterwards.
    """
    theta, y = np.linalg.eigh(t_mat)
    want = order(theta, which, k)
    norm_w = float(_xp.namespace(w).linalg.vector_norm(w))
    res = norm_w * np.abs(y[-1, want])
    t_norm = float(np.max(np.abs(theta)))
    return bool(np.all(res <= threshold(theta[want], t_norm, tol, eps)))


@dataclass
class Run:
    """Host values and residuals (ordered by ``which``), device vectors, counts and flags."""

    values: np.ndarray
    vectors: Array | None
    residuals: np.ndarray
    converged: bool
    num_matvecs: int
    whole_space: bool
    like: Array  # an array of the operator's namespace, dtype and device
    verified: bool = False
    runner_up: Array | None = None  # Ritz vector of the best unwanted Ritz value
    spare: Any = None  # the finished Basis: its storage is free for the check to reuse


def finish(
    store: Any,
    theta: np.ndarray,
    coeffs: np.ndarray,
    res: np.ndarray,
    which: str,
    k: int,
    converged: bool,
    matvecs: int,
    whole: bool,
    want_vectors: bool,
) -> Run:
    """The wanted Ritz pairs ``(θ, V c)`` in output order, and the runner-up Ritz vector."""
    want = order(theta, which, k)
    out = want[output_order(theta[want], which)]
    vectors = runner_up = None
    if want_vectors:  # the wanted vectors and the runner-up in one pass over the basis
        extra = [int(order(theta, which, k + 1)[k])] if theta.size > k else []
        # as rows: each vector contiguous (the check locks them one by one), the (n, k) block
        # column-major; eigsh returns it row-major
        rows = store.combine(coeffs[:, [*out.tolist(), *extra]])
        vectors = rows[: out.size, :].T
        runner_up = rows[out.size, :] if extra else None
    return Run(
        theta[out],
        vectors,
        res[out],
        converged,
        matvecs,
        whole,
        store.column(0),
        runner_up=runner_up,
        spare=store if want_vectors else None,  # the vectors do not alias it (combine copies)
    )
