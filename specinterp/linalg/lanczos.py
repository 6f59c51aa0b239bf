"""Symmetric Lanczos: thick-restart band Lanczos and plain tridiagonalisation.

Theory: :ref:`theory-lanczos`.

``eigsh`` computes eigenpairs; the plain Lanczos run behind stochastic Lanczos quadrature,
``lanczos_tridiagonal``, lives in :mod:`specinterp.linalg.tridiagonal` (importable from here).

The eigensolver (its iteration in :mod:`._thick_restart`) keeps the full projected matrix
``T = Vᵀ A V`` (computed, not assumed tridiagonal), orthogonalises every new direction against
the whole basis twice, and restarts by keeping the best Ritz vectors (thick restart, Wu & Simon
2000; Stathopoulos & Saad 2007).
With ``block_size = b > 1`` it is Ruhe's band Lanczos (1979): ``b`` pending directions are
expanded one at a time, so eigenvalues of multiplicity up to ``b`` are found — like ARPACK, a
single-vector Krylov method (``b = 1``) sees only one copy of a repeated eigenvalue. An
invariant subspace (fewer distinct eigenvalues than steps) is detected and the iteration goes on
with a fresh random direction orthogonal to the basis, never dividing by zero.

With ``reorthogonalize="partial"`` (or ``"auto"`` for long vectors at ``b = 1``) the first cycle
keeps the basis only semi-orthogonal and takes its Ritz pairs exactly on the basis' span from
its measured Gram matrix (:mod:`._partial`, :ref:`theory-lanczos-partial`).

The small projected eigenproblems are solved on the host in float64 (NumPy), with one NumPy
BLAS thread while another library runs the products (:mod:`specinterp._xp.host_threads`); the
Krylov basis and every product stay in the operator's namespace and device.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .. import _xp
from ..errors import ShapeError
from . import _missed
from ._ritz import Run, order, output_order
from ._scaling import SelfScaling, unscale
from ._thick_restart import thick_restart
from .compression import beyond_zero, compression_of, lifted
from .operator import LinearOperator, aslinearoperator
from .results import EigResult
from .tridiagonal import lanczos_tridiagonal

Array = Any
Which = Literal["LA", "SA", "LM", "BE"]

__all__ = ["eigsh", "lanczos_tridiagonal"]


def eigsh(
    op: LinearOperator | Array,
    k: int = 6,
    *,
    which: Which = "LA",
    tol: float | None = None,
    max_iter: int = 300,
    ncv: int | None = None,
    block_size: int = 1,
    v0: Array | None = None,
    seed: int | np.random.Generator | None = 0,
    return_vectors: bool = False,
    verify: bool = True,
    reorthogonalize: Literal["auto", "full", "partial"] = "full",
    stop_below: float | None = None,
) -> EigResult:
    """``k`` eigenpairs of a symmetric operator by thick-restart (band) Lanczos.

    An operator that knows a subspace outside which it vanishes (``op.compression()``: the
    Hessian or GGN of an MLP whose first dense layer sees fewer samples than inputs) is solved
    on that subspace for ``"LA"`` / ``"SA"`` at block size 1 without ``v0`` — unless its zeros
    belong to the answer (docs: theory, #theory-compression); ``num_matvecs`` then counts the
    products of the compressed operator.

    Parameters
    ----------
    op : LinearOperator, dense symmetric array, or SciPy sparse matrix or operator
        Symmetric ``n × n``.
    k : int
        Number of eigenpairs, ``1 ≤ k < n`` (``k = n`` is allowed: the basis fills the space).
    which : {"LA", "SA", "LM", "BE"}
        Largest / smallest algebraic, largest magnitude, both ends (half from each end).
    tol : float, optional
        Relative residual tolerance: a pair is converged when
        ``‖A x − θ x‖ ≤ tol · max(|θ|, eps^{2/3} ‖T‖)`` (ARPACK's rule) or at most
        ``eps · ‖T‖``, the rounding of one product (docs: theory, #theory-lanczos). Default
        ``√eps``.
    max_iter : int
        Maximum number of restarts.
    ncv : int, optional
        Basis size before a restart; default ``max(2k + 1, 20)``, capped at ``n``.
    block_size : int
        Pending directions ``b``; ``b`` at least the largest wanted multiplicity.
    v0 : array, optional
        Starting vector ``(n,)`` (``b = 1`` only); default uniform on ``[−1, 1]ⁿ`` from
        ``seed`` (ARPACK's default).
    seed : int, Generator or None
        Seeds the starting block and any breakdown restarts (reproducible on every backend).
    return_vectors : bool
        Also return the Ritz vectors ``(n, k)``.
    verify : bool
        After convergence, look for wanted eigenvalues the Krylov space could not see — extra
        copies of a repeated eigenvalue, members of a tight cluster — by a second Lanczos run
        on the operator deflated by the found vectors, and add any it finds (docs: numerical
        guarantees, #numerics-multiplicity). A missed eigenvector escapes it with probability
        at most 1e-6. Costs a few products when the wanted values are well separated from
        the rest; ``verify=False`` skips it (then ``EigResult.verified`` is False unless the
        basis filled the whole space).
    reorthogonalize : {"auto", "full", "partial"}
        ``"full"`` orthogonalises every new direction against the whole basis. ``"partial"``
        (block size 1) runs the first cycle on the three-term recurrence and a full pass only
        when Simon's estimate of the lost orthogonality exceeds ``√eps``, then makes the
        Rayleigh–Ritz exact on the span of that semi-orthogonal basis from its measured Gram
        matrix, so values, vectors and residual bounds mean what they mean under ``"full"``
        (docs: theory, #theory-lanczos); a later restart goes on fully reorthogonalised. It
        saves most basis reads, which dominate a step when a product is cheap and the vectors
        long — but where the products carry more rounding than ``eps ‖A‖`` (float32 through a
        deep network) the estimate can fall behind, the Gram guard then discards the cycle, and the
        run costs a cycle more (measured: 47 against 27 products for the GGN of a GPT-2-style
        model). ``"auto"``: partial at block size 1 for ``n ≥ 16384``, else full. Default
        ``"full"``.
    stop_below : float, optional
        With ``which="SA"``: also stop (unconverged, unverified) as soon as the ``k``-th
        smallest Ritz value is at most this. Ritz values are upper bounds on the smallest
        eigenvalues (Cauchy interlacing), so the run has then shown ``λ_k ≤ stop_below`` —
        for a positive semi-definite operator, with ``stop_below`` its resolution, that the
        bottom of the spectrum cannot be told from zero in this precision (how the GMSI's
        ``κ(K)`` ends on a float32 NTK). Checked at every step from the ``k``-th.

    Returns
    -------
    EigResult
        Values ordered by ``which`` (descending for LA/LM, ascending for SA/BE), residual
        norms (T9: an eigenvalue lies within each), ``converged``, ``verified``,
        ``num_matvecs`` (the check's products included).

    """
    op = aslinearoperator(op)
    if not op.symmetric:
        raise ValueError(
            "eigsh needs a symmetric operator; build it with symmetric=True, or use svds for "
            "a rectangular or non-symmetric operator"
        )
    n = op.shape[0]
    xp = op.xp
    if which not in ("LA", "SA", "LM", "BE"):
        raise ValueError(f"which must be 'LA', 'SA', 'LM' or 'BE'; got {which!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 ≤ k ≤ n = {n}; got k={k}")
    b = int(block_size)
    if not 1 <= b <= n:
        raise ValueError(f"block_size must lie in [1, n]; got {block_size}")
    m = min(n, max(2 * k + 1, 20, k + 2 * b) if ncv is None else int(ncv))
    if m < min(n, k + b):
        raise ValueError(f"ncv must be at least k + block_size = {k + b} (or n); got {ncv}")
    tol = float(np.sqrt(_xp.eps(xp, op.dtype))) if tol is None else float(tol)
    rng = _xp.as_generator(seed, xp, op.device)
    if v0 is not None:
        if b != 1:
            raise ValueError("v0 gives one starting vector; use it with block_size=1")
        if tuple(v0.shape) != (n,):
            raise ShapeError(f"v0 must have shape ({n},); got {tuple(v0.shape)}")
    partial = _partial_wanted(reorthogonalize, n, b)
    if stop_below is not None and which != "SA":
        raise ValueError(
            f"stop_below bounds the smallest eigenvalues; use it with which='SA', not {which!r}"
        )
    spent = 0  # products of a compressed run whose answer needed the operator's zeros
    comp = compression_of(op) if which in ("LA", "SA") and v0 is None and b == 1 else None
    if comp is not None and stop_below is None and k < comp.operator.shape[0]:
        small = eigsh(
            comp.operator, k, which=which, tol=tol, max_iter=max_iter, seed=rng,
            ncv=None if ncv is None else min(int(ncv), comp.operator.shape[0]),
            return_vectors=return_vectors, verify=verify, reorthogonalize=reorthogonalize,
        )  # fmt: skip
        if beyond_zero(small, which):
            return lifted(small, comp, xp)
        spent = small.num_matvecs
    scaled = SelfScaling(op)  # no over- or underflow inside, whatever the operator's norm
    want_vectors = verify or return_vectors
    with _xp.host_blas_single(xp):  # the projected problems are small: no thread contention
        below = None if stop_below is None else float(stop_below)
        run = thick_restart(
            scaled, k, which, tol, max_iter, m, b, v0, rng, want_vectors, partial, below
        )
        if verify and run.converged and not run.whole_space:
            run = _verify(scaled, run, k, which, tol, max_iter, m, rng, partial)
    c = unscale(scaled.scale)
    return EigResult(
        values=_xp.from_host(run.values * c, run.like),
        vectors=_xp.contiguous(run.vectors) if return_vectors else None,
        residuals=_xp.from_host(run.residuals * c, run.like),
        converged=run.converged,
        num_matvecs=run.num_matvecs + spent,
        verified=run.whole_space or run.verified,
    )


#: ``reorthogonalize="auto"`` is partial from this dimension on (block size 1)
PARTIAL_MIN_N = 16384


def _partial_wanted(reorthogonalize: str, n: int, b: int) -> bool:
    if reorthogonalize not in ("auto", "full", "partial"):
        raise ValueError(
            f"reorthogonalize must be 'auto', 'full' or 'partial'; got {reorthogonalize!r}"
        )
    if reorthogonalize == "partial" and b != 1:
        raise ValueError(
            "reorthogonalize='partial' runs at block_size=1; use 'full' (or 'auto') with a block"
        )
    if reorthogonalize == "auto":
        return b == 1 and n >= PARTIAL_MIN_N
    return reorthogonalize == "partial"


def _verify(
    op: LinearOperator,
    run: Run,
    k: int,
    which: str,
    tol: float,
    max_iter: int,
    m: int,
    rng: Any,
    partial: bool = False,
) -> Run:
    """Look for eigenvalues the run missed (repeated or clustered); add them until none is left.

    Each round runs :func:`~specinterp.linalg._missed.check` against every vector found so far;
    a ``found`` runs the eigensolver again on the deflated operator and keeps the best ``k`` of
    both. Every round that finds something moves the ``k``-th value strictly inwards, and the
    rounds are capped at ``k + 1``.
    """
    xp = op.xp
    locked, values, vectors, res = run.vectors, run.values, run.vectors, run.residuals
    matvecs, converged = run.num_matvecs, run.converged
    outcome = "unverified"
    warm, spare = run.runner_up, run.spare
    for _ in range(k + 1):
        margin = tol * float(np.max(np.abs(values))) + float(np.max(res))
        side = _missed.sides(values, which, k, margin)
        outcome, used = _missed.check(
            op,
            locked,
            side,
            tol=tol,
            rng=rng,
            max_steps=_missed.step_budget(op, m, max(3 * m, run.num_matvecs)),
            warm=warm,
            spare=spare,
        )
        warm = spare = None
        matvecs += used
        if outcome != "found":
            break
        extra = thick_restart(
            _missed.deflated(op, locked, side.shift()),
            k,
            which,
            tol,
            max_iter,
            m,
            1,
            None,
            rng,
            True,
            partial,
        )
        matvecs += extra.num_matvecs
        converged = converged and extra.converged
        new = np.flatnonzero(_missed.outside(locked, extra.vectors))
        if new.size == 0:  # only parked directions came back: nothing new to add
            outcome = "unverified"
            break
        extra_vectors = _missed.columns(extra.vectors, new)
        # a pair of P A P is one of A up to the residual of the locked block, ‖Xᵀ A x‖ ≤ ‖R‖
        extra_res = extra.residuals[new] + float(np.sqrt(np.sum(res**2)))
        all_values = np.concatenate([values, extra.values[new]])
        pick = order(all_values, which, k)
        pick = pick[output_order(all_values[pick], which)]
        all_vectors = xp.concat([vectors, extra_vectors], axis=1)
        values, res = all_values[pick], np.concatenate([res, extra_res])[pick]
        vectors = _missed.columns(all_vectors, pick)
        locked = xp.concat([locked, extra_vectors], axis=1)
    return Run(values, vectors, res, converged, matvecs, False, run.like, outcome == "verified")
