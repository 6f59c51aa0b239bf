"""The Global Matrix Stability Index (:ref:`theory-gmsi`).

This library's definition — the paper's exact aggregation was not available.

``GMSI = max(s_J, s_θ, s_K, s_H)`` combines four spectra. Each is produced by a *strategy* —
dense (materialise the matrix, all eigenvalues) or matrix-free (Lanczos, SLQ, per-sample
blocks) — or handed over already computed (:class:`GMSIInputs`), so a caller that has the
Jacobian spectra or the NTK (the report) does not compute them twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import _xp
from ._progress import counting
from .diagnostics import jacobian_spectra
from .entropy_estimates import entropy_from_values, slq_entropy
from .errors import MemoryBudgetError
from .linalg import LinearOperator, eigsh
from .losses import Loss, get_loss
from .model import as_model, input_space
from .model_operators import natural_outputs
from .operators import hessian, hessian_operator, ntk, ntk_operator

Array = Any

__all__ = ["GMSIInputs", "GMSIResult", "curvature_max", "gmsi"]


@dataclass(frozen=True)
class GMSIResult:
    """The Global Matrix Stability Index and everything it is made of (:ref:`theory-gmsi`).

    Attributes
    ----------
    value : float
        The aggregate (``max`` of the components by default).
    components : dict
        ``{"forward": s_J, "parameter": s_θ, "ntk": s_K, "curvature": s_H}``.
    binding : str
        Name of the largest component.
    typical : dict
        ``{"forward": t_J = mean_i ‖J_i‖_F/√d, "ntk": (tr K / (N·NC))^½ ...}``.
    entropies, effective_ranks : dict
        ``H`` and ``exp H`` of ``J`` (mean over samples), ``K`` and ``H``.
    ntk_condition_number : float
        ``κ(K) = λ_max / λ_min`` (``inf`` if singular).
    hessian_condition_number : float
        ``κ_+(H) = λ_max / λ_min^+`` over the computed positive eigenvalues: all of them on the
        dense route, the six largest on the matrix-free one (then a lower bound on the dense
        value); ``details["hessian_condition_over"]`` says which.
    residual_curvature_dominates : bool
        ``s_H > s_K``: by T6/T7 impossible when ``H = GGN``, so the residual ``R`` dominates.
    beta : float
        ``β_ℓ = max_i λ_max(Λ_i)``.
    method : str
        ``"dense"`` or ``"matrix-free"``.
    aggregation : str

    """

    value: float
    components: dict[str, float]
    binding: str
    typical: dict[str, float]
    entropies: dict[str, float]
    effective_ranks: dict[str, float]
    ntk_condition_number: float
    hessian_condition_number: float
    residual_curvature_dominates: bool
    beta: float
    method: str
    aggregation: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GMSIInputs:
    """Spectra already computed at the same batch, which :func:`gmsi` then uses as they are.

    Attributes
    ----------
    jacobian : JacobianSpectra, optional
        :func:`specinterp.jacobian_spectra` of the model at ``x`` (gives ``s_J``, ``t_J`` and
        the Jacobian entropy).
    ntk : array, optional
        The dense NTK ``K`` at ``x``, ``(N·C, N·C)`` (gives ``s_K``, ``κ(K)``, its entropy and,
        from its diagonal blocks ``K_ii = G_i G_iᵀ``, ``s_θ``).
    hessian_eigenvalues : array, optional
        All eigenvalues of the dense Hessian at ``(x, y)``.

    """

    jacobian: Any = None
    ntk: Array | None = None
    hessian_eigenvalues: Array | None = None


@dataclass(frozen=True)
class _NTKPart:
    k_max: float
    k_min: float
    trace: float
    entropy: float
    s_theta: float
    details: Any = None
    entropy_error: float = 0.0  # 0: exact (dense eigenvalues)


@dataclass(frozen=True)
class _HessianPart:
    h_max: float
    positive: np.ndarray
    entropy: float
    details: Any = None
    entropy_error: float = 0.0


def hessian_condition(part: _HessianPart) -> tuple[float, str]:
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
    lf.check(z, y)
    op = LinearOperator(
        (n * c, n * c),
        lambda u: xp.reshape(lf.apply_hessian(z, y, xp.reshape(u, tuple(z.shape))), (n * c,)),
        dtype=z.dtype,
        xp=xp,
        device=_xp.device(z),
        symmetric=True,
    )
    return float(_xp.to_numpy(eigsh(op, 1, which="LA", seed=seed).values)[0])


def _aggregate(components: dict[str, float], how: str) -> float:
    if how == "max":
        return max(components.values())
    if how == "log-mean":
        vals = [v for v in components.values() if v > 0]
        return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else 0.0
    raise ValueError(f"aggregation must be 'max' or 'log-mean'; got {how!r}")


# ------------------------------------------------------------------ strategies
def _ntk_from_matrix(k: Array, n: int, c: int, how: str = "dense") -> _NTKPart:
    """Every NTK quantity from the dense ``K``; ``s_θ² = max_i λ_max(K_ii)`` (T6's blocks)."""
    k = _xp.to_numpy(k).astype(np.float64)
    k = 0.5 * (k + k.T)
    lam = np.linalg.eigvalsh(k)
    blocks = [np.linalg.eigvalsh(k[i * c : (i + 1) * c, i * c : (i + 1) * c])[-1] for i in range(n)]
    return _NTKPart(
        k_max=float(lam[-1]),
        k_min=float(lam[0]),
        trace=float(np.trace(k)),
        entropy=entropy_from_values(np.clip(lam, 0.0, None)),
        s_theta=math.sqrt(max(0.0, float(max(blocks)))),
        details=how,
    )


def _small_ntk(model: Any, x: Array, n: int, c: int) -> _NTKPart:
    """``K`` formed densely (``N·C`` small): the cheapest exact route, whatever ``p`` is.

    The structured layer-wise Gram for an MLP, else ``G Gᵀ`` from the native Jacobian when
    ``G`` fits the memory budget, else ``N·C`` operator products.
    """
    try:
        k, path = ntk(model, x, return_path=True)
    except MemoryBudgetError:
        eye = model.xp.eye(n * c, dtype=model.dtype, device=_xp.device(x))
        k, path = ntk_operator(model, x).matmat(eye), "Jacobian products"
    return _ntk_from_matrix(k, n, c, f"dense ({path})")


def _ntk_matrix_free(model: Any, x: Array, n: int, c: int, opts: dict[str, Any]) -> _NTKPart:
    """Lanczos for ``λ_max`` / ``λ_min``, per-sample ``C × C`` blocks, SLQ for the entropy."""
    xp = model.xp
    kop = ntk_operator(model, x)
    eye = xp.eye(c, dtype=model.dtype, device=_xp.device(x))
    blocks = [
        np.linalg.eigvalsh(_xp.to_numpy(ntk_operator(model, x[i : i + 1, ...]).matmat(eye)))
        for i in range(n)
    ]
    tr_k = float(sum(np.sum(b) for b in blocks))
    top = _eigsh(kop, 1, "LA", opts, "NTK λ_max (Lanczos)")
    bottom = _eigsh(kop, 1, "SA", opts, "NTK λ_min (Lanczos)")
    entropy = _entropy(kop, opts, tr_k)
    return _NTKPart(
        k_max=float(_xp.to_numpy(top.values)[0]),
        k_min=float(_xp.to_numpy(bottom.values)[0]),
        trace=tr_k,
        entropy=entropy.value,
        s_theta=math.sqrt(max(0.0, max(float(b[-1]) for b in blocks))),
        details=(top, bottom),
        entropy_error=entropy.error,
    )


def _eigsh(op: Any, k: int, which: str, opts: dict[str, Any], desc: str) -> Any:
    """:func:`eigsh` at the GMSI's tolerance (``None``: the dtype's ``√eps``), with a bar."""
    counted, bar = counting(op, f"gmsi: {desc}", None, enabled=opts["progress"])
    try:
        return eigsh(counted, k, which=which, tol=opts["tol"], seed=opts["seed"])
    finally:
        bar.close()


def _entropy(op: Any, opts: dict[str, Any], trace_abs: float | None) -> Any:
    """:func:`slq_entropy` with the GMSI's probes, steps, seed and progress setting."""
    return slq_entropy(
        op,
        num_probes=opts["num_probes"],
        num_steps=opts["num_steps"],
        seed=opts["seed"],
        trace_abs=trace_abs,
        progress=opts["progress"],
    )


def _hessian_from_values(lam: Array, p: int) -> _HessianPart:
    lam = np.sort(_xp.to_numpy(lam).astype(np.float64))
    floor = max(float(lam[-1]), 0.0) * max(p, 1) * np.finfo(float).eps
    return _HessianPart(float(lam[-1]), lam[lam > floor], entropy_from_values(lam), "dense")


def _hessian_matrix_free(model: Any, x: Array, y: Array, loss: Any, opts: dict) -> _HessianPart:
    hop = hessian_operator(model, x, y, loss)
    top = _eigsh(hop, min(6, model.num_params), "LA", opts, "Hessian top eigenvalues (Lanczos)")
    lam = _xp.to_numpy(top.values)
    entropy = _entropy(hop, opts, None)
    return _HessianPart(float(lam[0]), lam[lam > 0], entropy.value, top, entropy.error)


def _jacobian_part(model: Any, x: Array, given: Any) -> tuple[float, float, float]:
    """``(s_J, t_J, mean H(J_i))`` from :func:`jacobian_spectra` (given, or computed)."""
    js = jacobian_spectra(model, x) if given is None else given
    s_j = float(np.max(_xp.to_numpy(js.operator_norm)))
    t_j = float(np.mean(_xp.to_numpy(js.typical_gain)))  # ‖J_i‖_F / √d
    return s_j, t_j, float(np.nanmean(_xp.to_numpy(js.entropy)))


def gmsi(
    model: Any,
    x: Array = None,
    y: Array = None,
    *,
    data: Any = None,
    loss: Any = "cross_entropy",
    method: Literal["auto", "dense", "matrix-free"] = "auto",
    aggregation: Literal["max", "log-mean"] = "max",
    dense_limit: int = 3000,
    tol: float | None = None,
    seed: int = 0,
    num_probes: int = 3,
    num_steps: int = 25,
    progress: bool = True,
    given: GMSIInputs | None = None,
) -> GMSIResult:
    """The Global Matrix Stability Index of a model on a batch (:ref:`theory-gmsi`).

    ``s_J = max_i σ_1(J_i)``, ``s_θ = max_i σ_1(G_i)``, ``s_K = (λ_max(K)/N)^½``,
    ``s_H = (max(λ_max(H), 0)/β_ℓ)^½`` and ``GMSI = max(s_J, s_θ, s_K, s_H)`` — a gain, larger
    means less stable. By T6, ``s_K ≤ s_θ``; by T7, ``s_H ≤ s_K`` when ``H = GGN``.

    Parameters
    ----------
    method : {"auto", "dense", "matrix-free"}
        Each spectrum takes the cheapest exact route that fits. ``K`` is formed densely
        whenever ``N·C ≤ dense_limit``, whatever ``p`` is — by the layer-wise Gram identity
        for an MLP (:ref:`theory-structured-ntk`), else ``G Gᵀ`` from the native Jacobian, else
        ``N·C`` products — and all its eigenvalues (the smallest included, for ``κ(K)``) come
        from one dense solve; ``s_θ`` from its diagonal blocks ``K_ii = G_i G_iᵀ``
        (``σ_1(G_i)² = λ_max(K_ii)``). Above ``dense_limit``: Lanczos at both ends,
        per-sample ``C × C`` blocks for ``s_θ`` and SLQ for the entropy. ``H`` is dense
        (``p`` products) under ``"dense"``, and under ``"auto"`` when ``p ≤ dense_limit``;
        otherwise Lanczos for its top six eigenvalues and SLQ for its entropy
        (``"matrix-free"``; ``H`` is never formed).
    aggregation : {"max", "log-mean"}
        ``max`` (the reference) or the geometric mean of the positive components.
    tol : float, optional
        Lanczos residual tolerance (relative). Default: ``√eps`` of the model's dtype
        (3.5e-4 in float32, 1.5e-8 in float64) — a float32 product is only resolved to about
        ``eps·‖A‖``, so a tighter tolerance costs products without adding accuracy
        (docs: numerical guarantees).
    seed, num_probes, num_steps
        Lanczos / SLQ seed, SLQ probes and Lanczos steps per probe (``num_probes · num_steps``
        products per SLQ entropy). An SLQ entropy's stated error — the spread of its probes and
        the change from a rule of half the steps (:mod:`specinterp.entropy_estimates`) — is in
        ``details["entropy_error"]``; raise ``num_probes`` / ``num_steps`` to shrink it.
    progress : bool
        Progress bars on long Lanczos and SLQ runs (tqdm, when installed; a bar shows after
        2 s) and a time estimate before a run expected to take over 10 s; ``False`` is silent.
    given : GMSIInputs, optional
        Spectra already computed at this batch; they are used instead of computing them.
    data : optional
        Instead of ``x, y``: every sample of a dataset in batches (a ``DataLoader``, a list of
        ``(x, y)``, … as :func:`specinterp.batches.as_batches` reads them), one batch in memory
        (:func:`specinterp.stability_index_data.gmsi_over_data`; ``method`` then decides on
        ``p`` alone, the NTK being handled through its ``p × p`` Gram).

    """
    if data is not None:
        if x is not None or y is not None or given is not None:
            raise TypeError("gmsi takes x, y (one batch) or data= (batches), not both")
        from .stability_index_data import gmsi_over_data

        return gmsi_over_data(
            model,
            data,
            loss,
            method=method,
            aggregation=aggregation,
            dense_limit=dense_limit,
            tol=tol,
            seed=seed,
            num_probes=num_probes,
            num_steps=num_steps,
            progress=progress,
        )
    if x is None or y is None:
        raise TypeError("gmsi needs x, y (one batch) or data= (batches)")
    model = as_model(model)
    lf = get_loss(loss)
    model.check_input(x)
    given = GMSIInputs() if given is None else given
    z = model.apply(x)
    n, c, p = int(z.shape[0]), int(z.shape[1]), model.num_params
    dense_ntk = n * c <= dense_limit or method == "dense"
    if method == "auto":
        method = "dense" if p <= dense_limit else "matrix-free"
    if method not in ("dense", "matrix-free"):
        raise ValueError(f"method must be 'auto', 'dense' or 'matrix-free'; got {method!r}")
    opts = dict(tol=tol, seed=seed, num_probes=num_probes, num_steps=num_steps, progress=progress)
    beta = curvature_max(lf, natural_outputs(model, x), y, seed=seed)
    s_j, t_j, h_j = _jacobian_part(*input_space(model, x), given.jacobian)

    if given.ntk is not None:
        ntk_part = _ntk_from_matrix(given.ntk, n, c)
    elif dense_ntk:
        ntk_part = _small_ntk(model, x, n, c)
    else:
        ntk_part = _ntk_matrix_free(model, x, n, c, opts)
    if given.hessian_eigenvalues is not None:
        hess_part = _hessian_from_values(given.hessian_eigenvalues, p)
    elif method == "dense":
        hess_part = _hessian_from_values(
            np.linalg.eigvalsh(_xp.to_numpy(hessian(model, x, y, loss))), p
        )
    else:
        hess_part = _hessian_matrix_free(model, x, y, loss, opts)

    s_k = math.sqrt(max(ntk_part.k_max, 0.0) / n)
    s_h = math.sqrt(max(hess_part.h_max, 0.0) / beta) if beta > 0 else 0.0
    components = {"forward": s_j, "parameter": ntk_part.s_theta, "ntk": s_k, "curvature": s_h}
    # singular (κ = ∞) when λ_min ≤ size · eps · λ_max, as condition_number's default rtol
    k_max, k_min = ntk_part.k_max, ntk_part.k_min
    singular = k_min <= n * c * float(np.finfo(float).eps) * max(k_max, 0.0)
    kappa_h, kappa_scope = hessian_condition(hess_part)
    h_k, h_h = ntk_part.entropy, hess_part.entropy
    return GMSIResult(
        value=_aggregate(components, aggregation),
        components=components,
        binding=max(components, key=components.get),
        typical={"forward": t_j, "ntk": math.sqrt(max(ntk_part.trace, 0.0) / (n * n * c))},
        entropies={"jacobian": h_j, "ntk": h_k, "hessian": h_h},
        effective_ranks={"jacobian": math.exp(h_j), "ntk": math.exp(h_k), "hessian": math.exp(h_h)},
        ntk_condition_number=math.inf if singular else k_max / k_min,
        hessian_condition_number=kappa_h,
        residual_curvature_dominates=bool(s_h > s_k * (1 + 1e-9)),
        beta=beta,
        method=method,
        aggregation=aggregation,
        details={
            "hessian_condition_over": kappa_scope,
            "ntk": ntk_part.details,
            "hessian": hess_part.details,
            "entropy_error": {"ntk": ntk_part.entropy_error, "hessian": hess_part.entropy_error},
        },
    )
