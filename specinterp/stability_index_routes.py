"""How each spectrum of the GMSI is computed (:ref:`theory-gmsi`).

:func:`~specinterp.stability_index.gmsi` takes every spectrum by the cheapest exact route that
fits: the NTK densely when ``N·C`` is small (:func:`small_ntk`, whatever ``p`` is) or handed
over (:func:`ntk_from_matrix`), else by Lanczos, per-sample ``C × C`` blocks and SLQ
(:func:`ntk_matrix_free`); the Hessian from given or dense eigenvalues
(:func:`hessian_from_values`) or by Lanczos and SLQ (:func:`hessian_matrix_free`); the input
Jacobian spectra per sample (:func:`jacobian_part`). Each route returns the quantities the
index needs (:class:`NTKPart`, :class:`HessianPart`), with the solver's results as details.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _xp
from ._progress import counted, counting
from .diagnostics import jacobian_spectra
from .entropy_estimates import entropy_from_values, slq_entropy
from .errors import MemoryBudgetError
from .jacobian_estimates import JacobianEstimate, jacobian_estimate
from .linalg import LinearOperator, eigsh
from .losses import Loss
from .operators import DEFAULT_MAX_BYTES, hessian_operator, ntk, ntk_operator

Array = Any

__all__ = [
    "HessianPart",
    "NTKPart",
    "block_eigenvalues",
    "block_summary",
    "block_tops",
    "curvature_max",
    "eigsh_with_bar",
    "hessian_condition",
    "hessian_from_values",
    "hessian_matrix_free",
    "jacobian_part",
    "ntk_from_matrix",
    "ntk_matrix_free",
    "ntk_singular_level",
    "slq_entropy_with",
    "small_ntk",
]


@dataclass(frozen=True)
class NTKPart:
    """The NTK's share of the index: extreme eigenvalues, trace, entropy, ``s_θ`` (T6)."""

    k_max: float
    k_min: float
    trace: float
    entropy: float
    s_theta: float
    details: Any = None
    entropy_error: float = 0.0  # 0: exact (dense eigenvalues)
    trace_error: float = 0.0  # 0: exact (Σ_i tr K_ii from the blocks)


@dataclass(frozen=True)
class HessianPart:
    """The Hessian's share: ``λ_max``, the positive eigenvalues computed, the entropy."""

    h_max: float
    positive: np.ndarray
    entropy: float
    details: Any = None
    entropy_error: float = 0.0


def hessian_condition(part: HessianPart) -> tuple[float, str]:
    """``κ₊(H) = λ_max / λ_min⁺`` over the positive eigenvalues a route computed, and which.

    The dense route has every eigenvalue (those above ``p · eps · λ_max`` count as positive);
    the matrix-free one only the largest few, where the ratio is a lower bound on the dense one.
    """
    pos = part.positive
    kappa = float(pos.max() / pos.min()) if pos.size else math.inf
    if isinstance(part.details, str) and part.details == "dense":
        return kappa, f"all {pos.size} eigenvalues above p·eps·λ_max"
    return kappa, (
        f"the {pos.size} largest eigenvalues computed (a lower bound on κ₊ over the spectrum)"
    )


def curvature_max(lf: Loss, z: Array, y: Array, *, seed: int = 0) -> float:
    """``β = max_i λ_max(Λ_i)`` on the batch: dense ``Λ_i`` when small, else Lanczos.

    ``Λ = ⊕_i Λ_i`` is block-diagonal, so its largest eigenvalue is the largest over samples;
    for a language model (``C = T·V``) it is found matrix-free with the loss's ``Λ`` products.
    """
    xp = _xp.namespace(z)
    n, c = int(z.shape[0]), math.prod(z.shape[1:])
    if n * c * c <= 2**22:
        return float(np.max(np.linalg.eigvalsh(_xp.to_numpy(lf.hessian(z, y)))))
    lam = lf.hessian_at(z, y)
    op = LinearOperator(
        (n * c, n * c),
        lambda u: xp.reshape(lam(xp.reshape(u, tuple(z.shape))), (n * c,)),
        dtype=z.dtype,
        xp=xp,
        device=_xp.device(z),
        symmetric=True,
    )
    return float(_xp.to_numpy(eigsh(op, 1, which="LA", seed=seed).values)[0])


def ntk_from_matrix(k: Array, n: int, c: int, how: str = "dense") -> NTKPart:
    """Every NTK quantity from the dense ``K``; ``s_θ² = max_i λ_max(K_ii)`` (T6's blocks)."""
    k = _xp.to_numpy(k).astype(np.float64)
    k = 0.5 * (k + k.T)
    lam = np.linalg.eigvalsh(k)
    blocks = [np.linalg.eigvalsh(k[i * c : (i + 1) * c, i * c : (i + 1) * c])[-1] for i in range(n)]
    return NTKPart(
        k_max=float(lam[-1]),
        k_min=float(lam[0]),
        trace=float(np.trace(k)),
        entropy=entropy_from_values(np.clip(lam, 0.0, None)),
        s_theta=math.sqrt(max(0.0, float(max(blocks)))),
        details=how,
    )


def small_ntk(model: Any, x: Array, n: int, c: int) -> NTKPart:
    """``K`` formed densely (``N·C`` small): the cheapest exact route, whatever ``p`` is.

    The structured layer-wise Gram for an MLP, else ``G Gᵀ`` from the native Jacobian when
    ``G`` fits the memory budget, else ``N·C`` operator products.
    """
    try:
        k, path = ntk(model, x, return_path=True)
    except MemoryBudgetError:
        eye = model.xp.eye(n * c, dtype=model.dtype, device=_xp.device(x))
        k, path = ntk_operator(model, x).matmat(eye), "Jacobian products"
    return ntk_from_matrix(k, n, c, f"dense ({path})")


def ntk_singular_level(n: int, c: int, k_max: float, eps: float) -> float:
    """``√(N·C) · eps · λ_max``: an NTK whose ``λ_min`` lies at or below it is singular (κ = ∞).

    ``eps`` is the model dtype's. ``K`` is formed (or applied) in that precision: entries
    rounded relatively by ``eps`` perturb it by ``‖δK‖₂ ≤ ‖δK‖_F ≤ eps ‖K‖_F ≤ eps √(N·C) λ_max``,
    and by Weyl's inequality every eigenvalue moves by at most that — a ``λ_min`` below it
    cannot be told from zero. (NumPy's ``matrix_rank`` takes ``N·C · eps``, a worst case that
    in float32 would call a 4000 × 4000 NTK with κ = 4 000 singular, although its ``λ_min``
    agrees with float64's to 1e-3 · eps · λ_max.)
    """
    return math.sqrt(n * c) * eps * max(k_max, 0.0)


def ntk_matrix_free(model: Any, x: Array, n: int, c: int, opts: dict[str, Any]) -> NTKPart:
    """Lanczos for ``λ_max`` / ``λ_min``, per-sample ``C × C`` blocks, SLQ for the entropy.

    ``λ_min`` is skipped where ``N·C > p`` (``rank K ≤ p``: it is 0), and its Lanczos run stops
    as soon as a Ritz value — an upper bound on ``λ_min`` — reaches :func:`ntk_singular_level`:
    ``K`` is then singular in the model's precision, and the bottom of a large float32 NTK
    (a language model's, with ``C = T·V``) need not be resolved below its own rounding.

    Up to :data:`DENSE_BLOCK_MAX_C` outputs per sample, ``s_θ`` and the exact trace come from
    the dense blocks ``K_ii`` (:func:`block_eigenvalues`); above it forming a block costs ``C``
    backward passes per sample (a language model: ``C = T·V``), so ``λ_max(K_ii)`` comes from
    Lanczos on each sample's own NTK operator and ``tr K`` from the SLQ probes (Hutchinson's
    estimate, its standard error in ``trace_error``).
    """
    kop = ntk_operator(model, x)
    s_theta2, tr_k = block_summary(model, x, n, c, opts)
    top = eigsh_with_bar(kop, 1, "LA", opts, "NTK λ_max (Lanczos)")
    k_max = float(_xp.to_numpy(top.values)[0])
    if n * c > model.num_params:
        bottom, k_min = f"rank K ≤ p = {model.num_params} < N·C = {n * c}: λ_min = 0", 0.0
    else:
        # the bottom of an NTK spectrum is a cluster near zero: a longer thick-restart basis
        # (of N·C-long vectors, cheap) loses less at each restart — 2920 -> 1213 products for
        # λ_min of a 4000 × 4000 MLP NTK in float32 at ncv 20 -> 80
        ncv = min(n * c, BOTTOM_NCV)
        level = ntk_singular_level(n, c, k_max, _xp.eps(model.xp, model.dtype))
        bottom = eigsh_with_bar(
            kop, 1, "SA", opts, "NTK λ_min (Lanczos)", ncv=ncv, stop_below=level
        )
        k_min = float(_xp.to_numpy(bottom.values)[0])
    entropy = slq_entropy_with(kop, opts, tr_k)
    return NTKPart(
        k_max=k_max,
        k_min=k_min,
        trace=entropy.trace_abs,
        entropy=entropy.value,
        s_theta=math.sqrt(max(0.0, s_theta2)),
        details=(top, bottom),
        entropy_error=entropy.error,
        trace_error=entropy.trace_stderr,
    )


#: Outputs per sample up to which ``s_θ`` and ``tr K`` come from the dense per-sample blocks
DENSE_BLOCK_MAX_C = 256


def block_summary(
    model: Any, x: Array, n: int, c: int, opts: dict[str, Any]
) -> tuple[float, float | None]:
    """``(max_i λ_max(K_ii), Σ_i tr K_ii)`` of the per-sample NTK blocks; the trace ``None``.

    From the dense blocks (:func:`block_eigenvalues`) up to :data:`DENSE_BLOCK_MAX_C` outputs
    per sample; above it from :func:`block_tops`, without the trace (estimate it elsewhere).
    """
    if c <= DENSE_BLOCK_MAX_C:
        blocks = block_eigenvalues(model, x, n, c)
        return float(np.max(blocks[:, -1])), float(np.sum(blocks))
    return block_tops(model, x, n, opts), None


def block_tops(model: Any, x: Array, n: int, opts: dict[str, Any]) -> float:
    """``max_i λ_max(K_ii)`` by Lanczos on each sample's NTK operator (``C`` large).

    ``K_ii`` is the NTK of sample ``i`` alone; one progress bar counts every sample's products.
    """
    best, bar = -math.inf, None
    try:
        for i in range(n):
            op = ntk_operator(model, x[i : i + 1, ...])
            desc = f"gmsi: per-sample NTK λ_max ({n} samples)"
            counted, bar = counting(op, desc, None, enabled=opts["progress"], bar=bar)
            res = eigsh(counted, 1, which="LA", tol=opts["tol"], seed=opts["seed"])
            best = max(best, float(_xp.to_numpy(res.values)[0]))
    finally:
        if bar is not None:
            bar.close()
    return best


#: Krylov basis size for the NTK's smallest eigenvalue (the default 20 restarts too often there)
BOTTOM_NCV = 80

#: Entries of the chunk NTK from which :func:`block_eigenvalues` reads diagonal blocks
BLOCK_CHUNK_ENTRIES = 2**22


def block_eigenvalues(model: Any, x: Array, n: int, c: int) -> np.ndarray:
    """Eigenvalues ``(N, C)`` (ascending) of every per-sample NTK block ``K_ii`` (``C × C``).

    A chunk of samples at a time: the chunk's own NTK, by :func:`~specinterp.operators.ntk`'s
    fastest route (the layer-wise Gram of an MLP, the native Jacobian), holds its samples'
    blocks on its diagonal — one call where ``N`` operators of ``C`` products each would do
    (``s_θ² = max_i λ_max(K_ii)``, :ref:`theory-t6`). Chunks hold at most
    :data:`BLOCK_CHUNK_ENTRIES` entries of ``K`` and fit the memory budget of its Jacobian;
    where even one sample's Jacobian does not, each block comes from ``C`` products of its own
    operator.
    """
    p = max(1, int(model.num_params))
    itemsize = model.xp.finfo(model.dtype).bits // 8
    per = max(1, min(math.isqrt(BLOCK_CHUNK_ENTRIES) // c, DEFAULT_MAX_BYTES // (c * p * itemsize)))
    out = np.empty((n, c))
    for i0 in range(0, n, per):
        m = min(per, n - i0)
        try:
            k = _xp.to_numpy(ntk(model, x[i0 : i0 + m, ...])).astype(np.float64)
            diag = np.reshape(k, (m, c, m, c))[np.arange(m), :, np.arange(m), :]
        except MemoryBudgetError:
            eye = model.xp.eye(c, dtype=model.dtype, device=_xp.device(x))
            diag = np.stack(
                [
                    _xp.to_numpy(ntk_operator(model, x[i : i + 1, ...]).matmat(eye))
                    for i in range(i0, i0 + m)
                ]
            ).astype(np.float64)
        out[i0 : i0 + m] = np.linalg.eigvalsh(0.5 * (diag + np.swapaxes(diag, 1, 2)))
    return out


def eigsh_with_bar(
    op: Any,
    k: int,
    which: str,
    opts: dict[str, Any],
    desc: str,
    ncv: int | None = None,
    stop_below: float | None = None,
) -> Any:
    """:func:`eigsh` at the GMSI's tolerance (``None``: the dtype's ``√eps``), with a bar."""
    with counted(op, f"gmsi: {desc}", enabled=opts["progress"]) as wrapped:
        return eigsh(
            wrapped,
            k,
            which=which,
            tol=opts["tol"],
            seed=opts["seed"],
            ncv=ncv,
            stop_below=stop_below,
        )


def slq_entropy_with(op: Any, opts: dict[str, Any], trace_abs: float | None) -> Any:
    """:func:`slq_entropy` with the GMSI's probes, steps, seed and progress setting."""
    return slq_entropy(
        op,
        num_probes=opts["num_probes"],
        num_steps=opts["num_steps"],
        seed=opts["seed"],
        trace_abs=trace_abs,
        progress=opts["progress"],
    )


def hessian_from_values(lam: Array, p: int) -> HessianPart:
    """From all eigenvalues (dense or given): those above ``p · eps · λ_max`` count as positive."""
    lam = np.sort(_xp.to_numpy(lam).astype(np.float64))
    floor = max(float(lam[-1]), 0.0) * max(p, 1) * np.finfo(float).eps
    return HessianPart(float(lam[-1]), lam[lam > floor], entropy_from_values(lam), "dense")


def hessian_matrix_free(model: Any, x: Array, y: Array, loss: Any, opts: dict) -> HessianPart:
    """The six largest eigenvalues by Lanczos, the entropy by SLQ (``H`` never formed)."""
    hop = hessian_operator(model, x, y, loss)
    top = eigsh_with_bar(
        hop, min(6, model.num_params), "LA", opts, "Hessian top eigenvalues (Lanczos)"
    )
    lam = _xp.to_numpy(top.values)
    entropy = slq_entropy_with(hop, opts, None)
    return HessianPart(float(lam[0]), lam[lam > 0], entropy.value, top, entropy.error)


def jacobian_part(
    model: Any, x: Array, given: Any, opts: dict[str, Any] | None = None
) -> JacobianEstimate:
    """``s_J``, ``t_J``, the mean ``H(J_i)`` from :func:`jacobian_spectra` (given, or computed).

    Where even one sample's dense ``C × d`` Jacobian exceeds the memory budget (a language
    model's ``C = T·V`` without a linear-head factor) and ``opts`` are given, they come
    matrix-free instead
    (:func:`~specinterp.jacobian_estimates.jacobian_estimate`: Lanczos for ``s_J``, batched SLQ
    for the rest, the entropy with its stated error).
    """
    if given is None:
        try:
            given = jacobian_spectra(model, x)
        except MemoryBudgetError:
            if opts is None:
                raise
            return jacobian_estimate(model, x, **opts)
    s_j = float(np.max(_xp.to_numpy(given.operator_norm)))
    t_j = float(np.mean(_xp.to_numpy(given.typical_gain)))  # ‖J_i‖_F / √d
    return JacobianEstimate(s_j, t_j, float(np.nanmean(_xp.to_numpy(given.entropy))), 0.0, 0)
