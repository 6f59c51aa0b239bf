"""The thick-restart (band) Lanczos iteration behind :func:`~specinterp.linalg.eigsh`.

Theory: :ref:`theory-lanczos`. :func:`~specinterp.linalg.lanczos.eigsh` checks its arguments,
solves on a compression where the operator has one, scales the operator and runs the
missed-eigenvalue check; this module is the iteration: expand the basis one direction at a
time (full reorthogonalisation, or a first cycle with partial reorthogonalisation from
:mod:`._partial`), stop early when the wanted Ritz pairs meet the tolerance, and restart from
the best Ritz vectors (Wu & Simon 2000; Stathopoulos & Saad 2007).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _xp
from . import _partial
from ._orth import Basis, normalize_or_restart, project_out
from ._ritz import Run, early_converged, finish, order, threshold
from ._scaling import unscale
from .operator import LinearOperator

Array = Any


def thick_restart(
    op: LinearOperator,
    k: int,
    which: str,
    tol: float,
    max_iter: int,
    m: int,
    b: int,
    v0: Array | None,
    rng: Any,
    want_vectors: bool,
    partial: bool = False,
    stop_below: float | None = None,
) -> Run:
    """The thick-restart (band) Lanczos iteration itself (see :func:`~.lanczos.eigsh`)."""
    n = op.shape[0]
    xp = op.xp
    eps = _xp.eps(xp, op.dtype)
    if v0 is not None:
        starts = [v0]
    else:
        # uniform on [−1, 1]ⁿ, as ARPACK starts: any continuous distribution puts a non-zero
        # component along every eigenvector almost surely, and NumPy draws it in a fifth of a
        # Gaussian's time (the check's start, whose bound needs a Gaussian, stays one)
        starts = [rng.uniform((n,), dtype=op.dtype, low=-1.0, high=1.0) for _ in range(b)]
    # Pending directions: (raw vector, reference norm, basis column whose image it is). A raw
    # image is kept unnormalised so that residuals ‖(I − VVᵀ) A v_j‖ can be read off it.
    pending = [(v, float(xp.linalg.vector_norm(v)), -1) for v in starts]

    store = Basis(starts[0], m)  # (n, j) orthonormal columns, preallocated where possible
    t_mat = np.zeros((0, 0))  # host float64: T = Vᵀ A V, computed column by column
    matvecs = 0
    first = 0
    if partial:
        cycle = _partial.first_cycle(op, starts[0], k, which, tol, m, rng)
        begun = _partial.finish_cycle(op, cycle, k, which, tol, m, want_vectors, max_iter)
        if isinstance(begun, Run):
            return begun
        if isinstance(begun, tuple):  # a thick restart from the first cycle's Ritz vectors
            store, t_mat, pending, matvecs = begun
            first = 1
        else:  # the basis lost too much orthogonality: start again, fully reorthogonalised
            matvecs = begun

    early = below = False
    for restart in range(first, max_iter + 1):
        # ---- expand the basis to m columns (or to n: then it spans the whole space)
        while store.size < m:
            raw, ref, owner = pending.pop(0)
            # an image projected at step `owner` against the same basis is already orthogonal
            # to it (block size 1); otherwise the basis has grown since
            fresh = store.size > 0 and owner >= 0 and store.size == owner + 1
            q = raw if fresh else project_out(store, raw)[0]
            q, _ = normalize_or_restart(store, q, ref, rng)
            store.append(q)
            w = op.matvec(q)
            matvecs += 1
            ref = float(xp.linalg.vector_norm(w))
            w, coef = project_out(store, w)
            j = store.size - 1
            t_new = np.zeros((j + 1, j + 1))
            t_new[:j, :j] = t_mat
            t_new[: j + 1, j] = coef
            t_new[j, : j + 1] = coef
            t_mat = t_new
            pending.append((w, ref, j))
            early = b == 1 and k <= j + 1 < m and early_converged(t_mat, w, which, k, tol, eps)
            # in the operator's own units (a SelfScaling knows its scale after one product)
            below = stop_below is not None and (
                _kth_smallest(t_mat, k) * unscale(getattr(op, "scale", None)) <= stop_below
            )
            if store.size == n or early or below:
                break
        theta, y = np.linalg.eigh(t_mat)
        t_norm = float(np.max(np.abs(theta)))
        # ---- residuals ‖R y‖, R = (I − VVᵀ) A V: non-zero only in the columns that own a
        # pending image (every older image has been absorbed into the basis)
        if store.size == n:
            res = np.zeros_like(theta)
        else:
            owners = np.asarray([o for _, _, o in pending])
            assert np.all(owners >= 0), "a restart came before the pending images were absorbed"
            # each pending image was orthogonalised only against the basis of its own step:
            # project it against the whole basis now (also what a restart must carry over)
            pending = [(project_out(store, w)[0], ref, o) for w, ref, o in pending]
            # ‖R y‖ = ‖R_r y_owners‖ with R = Q_r R_r: no (n × m) product is formed (one
            # pending image: R_r is its norm)
            if len(pending) == 1:
                r_small = np.array([[float(xp.linalg.vector_norm(pending[0][0]))]])
            else:
                r_block = xp.stack([w for w, _, _ in pending], axis=1)
                r_small = _xp.to_numpy(xp.linalg.qr(r_block)[1]).astype(np.float64)
            res = np.linalg.norm(r_small @ y[owners, :], axis=0)
        want = order(theta, which, k)
        thresh = threshold(theta[want], t_norm, tol, eps)
        converged = bool(np.all(res[want] <= thresh)) or store.size == n or early
        # the reported bound adds the rounding in V and in eigh, so that T9 stays rigorous
        res = res + store.size * eps * t_norm
        if converged or below or restart == max_iter:
            break
        # ---- thick restart: keep the p best Ritz vectors; the pending images (now orthogonal
        # to the whole old basis, hence to the kept one) span the residuals of the kept vectors
        # and are absorbed within the next b ≤ m − p steps
        p = min(k + (m - k) // 2, m - b)
        keep = order(theta, which, p)
        store.rotate(y[:, keep])
        t_mat = np.diag(theta[keep])
        pending = [(w, ref, -1) for w, ref, _ in pending]

    whole = store.size == n
    return finish(store, theta, y, res, which, k, converged, matvecs, whole, want_vectors)


def _kth_smallest(t_mat: np.ndarray, k: int) -> float:
    """The ``k``-th smallest eigenvalue of the projected matrix (``inf`` while it is smaller)."""
    return float(np.linalg.eigvalsh(t_mat)[k - 1]) if t_mat.shape[0] >= k else np.inf
