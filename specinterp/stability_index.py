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
from .losses import get_loss
from .model import as_model
from .model_operators import natural_outputs
from .operators import hessian
from .stability_index_routes import (
    curvature_max,
    hessian_condition,
    hessian_from_values,
    hessian_matrix_free,
    jacobian_part,
    ntk_from_matrix,
    ntk_matrix_free,
    ntk_singular_level,
    small_ntk,
)

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
        ``{"forward": t_J = mean_i ‖J_i‖_F/√d, "ntk": (tr K / (N·NC))^½ ...}``; ``tr K`` is
        exact except above ``dense_limit`` with more than 256 outputs per sample (a language
        model), where it is the SLQ probes' estimate, its standard error in
        ``details["ntk_trace_error"]`` (0 when exact).
    entropies, effective_ranks : dict
        ``H`` and ``exp H`` of ``J`` (mean over samples), ``K`` and ``H``.
    ntk_condition_number : float
        ``κ(K) = λ_max / λ_min``; ``inf`` when ``K`` is singular in the model's precision:
        ``N·C > p`` (``rank K ≤ p``) or ``λ_min ≤ √(N·C) · eps · λ_max`` with the model dtype's
        ``eps``, the most rounding entries of that precision can move an eigenvalue by (float32
        resolves ``κ`` up to about ``1/(√(N·C) · 1.2e-7)``).
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
    details : dict
        How each part was computed: ``"ntk"`` (the dense route's name, or the Lanczos results
        for ``λ_max`` and ``λ_min`` — the latter a sentence where ``rank K ≤ p < N·C`` made it
        0), ``"hessian"``, ``"hessian_condition_over"``, ``"entropy_error"`` (the stated error
        of each SLQ entropy: ``"ntk"``, ``"hessian"``, ``"jacobian"``; 0 where exact) and
        ``"ntk_trace_error"``.

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


def _aggregate(components: dict[str, float], how: str) -> float:
    if how == "max":
        return max(components.values())
    if how == "log-mean":
        vals = [v for v in components.values() if v > 0]
        return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else 0.0
    raise ValueError(f"aggregation must be 'max' or 'log-mean'; got {how!r}")


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
        (``σ_1(G_i)² = λ_max(K_ii)``). Above ``dense_limit``: Lanczos at both ends (with
        an 80-vector basis at the bottom, where the spectrum clusters near zero, stopped once
        ``K`` is shown singular in the model's precision; none when ``N·C > p``), the
        per-sample ``C × C`` blocks for ``s_θ`` read off the NTKs of chunks of samples (by the
        same routes; above 256 outputs per sample Lanczos on each sample's NTK, and ``tr K``
        from the SLQ probes), and SLQ for the entropy. ``H`` is dense
        (``p`` products) under ``"dense"``, and under ``"auto"`` when ``p ≤ dense_limit``;
        otherwise Lanczos for its top six eigenvalues and SLQ for its entropy
        (``"matrix-free"``; ``H`` is never formed). The input Jacobians' spectra are exact
        (:func:`~specinterp.jacobian_spectra`: a product-form or linear-head factor, else the
        dense Jacobians a chunk of samples at a time) when one sample's Jacobian fits the
        memory budget, else matrix-free (:mod:`specinterp.jacobian_estimates`: Lanczos on
        ``JᵀJ`` for ``s_J``, batched SLQ for ``t_J`` and the entropy).
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
    jac = jacobian_part(model, x, given.jacobian, opts)  # token ids: chunked, then embedded
    s_j, t_j, h_j = jac.s_j, jac.t_j, jac.entropy

    if given.ntk is not None:
        ntk_part = ntk_from_matrix(given.ntk, n, c)
    elif dense_ntk:
        ntk_part = small_ntk(model, x, n, c)
    else:
        ntk_part = ntk_matrix_free(model, x, n, c, opts)
    if given.hessian_eigenvalues is not None:
        hess_part = hessian_from_values(given.hessian_eigenvalues, p)
    elif method == "dense":
        hess_part = hessian_from_values(
            np.linalg.eigvalsh(_xp.to_numpy(hessian(model, x, y, loss))), p
        )
    else:
        hess_part = hessian_matrix_free(model, x, y, loss, opts)

    s_k = math.sqrt(max(ntk_part.k_max, 0.0) / n)
    s_h = math.sqrt(max(hess_part.h_max, 0.0) / beta) if beta > 0 else 0.0
    components = {"forward": s_j, "parameter": ntk_part.s_theta, "ntk": s_k, "curvature": s_h}
    # singular (κ = ∞) when rank K ≤ p < N·C, or λ_min ≤ √(N·C) · eps · λ_max in the model's
    # precision (ntk_singular_level)
    k_max, k_min = ntk_part.k_max, ntk_part.k_min
    eps = _xp.eps(model.xp, model.dtype)
    singular = n * c > p or k_min <= ntk_singular_level(n, c, k_max, eps)
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
            "entropy_error": {
                "ntk": ntk_part.entropy_error,
                "hessian": hess_part.entropy_error,
                "jacobian": jac.entropy_error,
            },
            "ntk_trace_error": ntk_part.trace_error,
        },
    )
