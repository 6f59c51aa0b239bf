"""Model-level stability diagnostics: Jacobian spectra, layer gains and the GMSI.

* :func:`jacobian_spectra` — per-sample input-Jacobian spectra and :ref:`theory-spectra` statistics.
* :func:`gmsi` — the Global Matrix Stability Index of :ref:`theory-gmsi` (this library's
  definition; the paper's exact aggregation was not available): four component scales in one
  unit (a gain), ``GMSI = max(s_J, s_θ, s_K, s_H)``, with typical counterparts, entropies and
  conditioning.
* :func:`~specinterp.radius.certified_radius` — T4, in :mod:`specinterp.radius` (importable
  from here too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import _xp
from ._guards import finite_result
from .capabilities import JacobianFactor, ProductForm, use
from .errors import ModelError
from .linalg import LinearOperator, eigsh, trace_function
from .losses import Loss, get_loss
from .model import as_model, input_space
from .operators import (
    hessian,
    hessian_operator,
    input_jacobian,
    natural_outputs,
    ntk,
    ntk_operator,
    param_jacobian,
)
from .radius import partial_products
from .spectra import Spectrum

Array = Any

__all__ = [
    "GMSIResult",
    "JacobianSpectra",
    "LayerGains",
    "gmsi",
    "jacobian_spectra",
    "layer_gains",
]


# ---------------------------------------------------------------------- Jacobian spectra
@dataclass(frozen=True, eq=False)
class JacobianSpectra:
    """Per-sample spectra of the input Jacobians ``J_i`` (arrays of length N, model namespace)."""

    singular_values: Array
    entropy: Array
    normalized_entropy: Array
    effective_rank: Array
    stable_rank: Array
    condition_number: Array
    attribution_condition_number: Array
    typical_gain: Array
    operator_norm: Array

    def as_dict(self) -> dict[str, np.ndarray]:
        """Per-sample statistics as NumPy arrays (singular values excluded)."""
        return {k: _xp.to_numpy(v) for k, v in self.__dict__.items() if k != "singular_values"}

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with one row per sample (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas needs pandas: pip install pandas") from exc
        return pd.DataFrame(self.as_dict())


@finite_result("input Jacobian")
def jacobian_spectra(model: Any, x: Array, *, max_bytes: int | None = None) -> JacobianSpectra:
    """Mathematics §1 statistics of every per-sample input Jacobian ``J_i = ∂f/∂x(x_i)``.

    Entropy-type statistics of a zero Jacobian are NaN (``on_zero="nan"``). A model with a
    product form (arraynet MLPs: ``input_jacobian_factor``) hands over ``C × n_1`` matrices
    with the singular values of the ``C × d`` Jacobians, so the per-sample SVDs are smaller;
    otherwise the Jacobians are formed (within ``max_bytes``).
    """
    s = _jacobian_spectrum(*input_space(model, x), max_bytes)
    return JacobianSpectra(
        singular_values=s.values,
        entropy=s.entropy(on_zero="nan"),
        normalized_entropy=s.entropy(normalized=True, on_zero="nan")
        if s.r >= 2
        else s.entropy(on_zero="nan"),
        effective_rank=s.effective_rank(on_zero="nan"),
        stable_rank=s.stable_rank(),
        condition_number=s.condition_number(),
        attribution_condition_number=s.attribution_condition_number(on_zero="nan"),
        typical_gain=s.typical_gain(),
        operator_norm=s.operator_norm(),
    )


def _jacobian_spectrum(model: Any, x: Array, max_bytes: int | None) -> Spectrum:
    try:
        b = use(model, JacobianFactor, x)
    except NotImplementedError:
        return Spectrum.from_matrix(input_jacobian(model, x, max_bytes=max_bytes))
    xp, (n, c, k), d = model.xp, (int(t) for t in b.shape), math.prod(x.shape[1:])
    values = Spectrum.from_matrix(b).values  # min(C, k) values, descending
    if k < min(c, d):  # rank ≤ k < min(C, d): the remaining singular values are 0
        zeros = xp.zeros((n, min(c, d) - k), dtype=values.dtype, device=_xp.device(b))
        values = xp.concat([values, zeros], axis=1)
    return Spectrum.from_singular_values(values, shape=(c, d), sort=False)


@dataclass(frozen=True, eq=False)
class LayerGains:
    """Per-layer gains of a product-form model (:ref:`theory-t3`), to see which layer amplifies.

    ``weight_norms[l] = ‖W_{l+1}‖₂``; ``masked_norms[l]`` ``(N,)`` is ``‖D_l(x) W_l‖₂`` for the
    layers followed by an activation; ``partial_norms[l]`` ``(N,)`` is
    ``σ_1(W_{l+1} D_l ⋯ D_1 W_1)``, the last one being ``σ_1(J)``.
    """

    weight_norms: list[float]
    masked_norms: list[Array]
    partial_norms: list[Array]


def layer_gains(model: Any, x: Array) -> LayerGains:
    """Per-layer gains and partial-product spectra of an MLP (T3)."""
    model = as_model(model)
    try:
        fac = use(model, ProductForm, x)
    except NotImplementedError as exc:
        raise ModelError(
            "layer_gains needs a model with a product form: an MLP from arraynet, torch "
            f"(nn.Sequential), Equinox or Flax ({exc})"
        ) from exc
    xp = model.xp
    n = int(x.shape[0])
    weight_norms = [
        float(_xp.to_numpy(Spectrum.from_matrix(w).operator_norm())) for w in fac.weights
    ]
    masked = [
        Spectrum.from_matrix(d[:, :, None] * w).operator_norm()
        for w, d in zip(fac.weights[:-1], fac.diagonals, strict=True)
    ]
    partial_norms = [Spectrum.from_matrix(p).operator_norm() for p in partial_products(fac, n, xp)]
    return LayerGains(weight_norms, masked, partial_norms)


# ---------------------------------------------------------------------- GMSI
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
        ``κ_+(H) = λ_max / λ_min^+`` over the computed positive eigenvalues.
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


def _entropy_from_values(lam: np.ndarray) -> float:
    w = np.abs(lam)
    total = w.sum()
    if total == 0:
        return float("nan")
    p = w[w > 0] / total
    return float(-(p * np.log(p)).sum())


def gmsi(
    model: Any,
    x: Array,
    y: Array,
    *,
    loss: Any = "cross_entropy",
    method: Literal["auto", "dense", "matrix-free"] = "auto",
    aggregation: Literal["max", "log-mean"] = "max",
    dense_limit: int = 3000,
    tol: float = 1e-8,
    seed: int = 0,
    num_probes: int = 10,
    num_steps: int = 40,
) -> GMSIResult:
    """The Global Matrix Stability Index of a model on a batch (:ref:`theory-gmsi`).

    ``s_J = max_i σ_1(J_i)``, ``s_θ = max_i σ_1(G_i)``, ``s_K = (λ_max(K)/N)^½``,
    ``s_H = (max(λ_max(H), 0)/β_ℓ)^½`` and ``GMSI = max(s_J, s_θ, s_K, s_H)`` — a gain, larger
    means less stable. By T6, ``s_K ≤ s_θ``; by T7, ``s_H ≤ s_K`` when ``H = GGN``.

    Parameters
    ----------
    method : {"auto", "dense", "matrix-free"}
        ``"dense"`` materialises ``J``, ``G``, ``K`` and ``H``; ``"matrix-free"`` never forms
        ``G`` or ``H``: it uses Lanczos on the Hessian operator and SLQ for its entropy, and
        forms ``K`` from ``N·C`` operator products when ``N·C ≤ dense_limit`` (exact, and
        cheaper than Lanczos for its smallest eigenvalue), else Lanczos, per-sample ``C × C``
        blocks for ``s_θ`` and SLQ for its entropy. ``"auto"`` is dense when ``N·C`` and ``p``
        are at most ``dense_limit``.
    aggregation : {"max", "log-mean"}
        ``max`` (the reference) or the geometric mean of the positive components.
    tol, seed, num_probes, num_steps
        Lanczos tolerance and seed, and SLQ probes / steps (matrix-free only).

    """
    model = as_model(model)
    lf = get_loss(loss)
    model.check_input(x)
    xp = model.xp
    z = model.apply(x)
    n, c = int(z.shape[0]), int(z.shape[1])
    p = model.num_params
    if method == "auto":
        method = "dense" if n * c <= dense_limit and p <= dense_limit else "matrix-free"
    if method not in ("dense", "matrix-free"):
        raise ValueError(f"method must be 'auto', 'dense' or 'matrix-free'; got {method!r}")
    beta = curvature_max(lf, natural_outputs(model, x), y, seed=seed)

    model_in, x_in = input_space(model, x)
    jac = _jacobian_spectrum(model_in, x_in, None)
    s_j = float(np.max(_xp.to_numpy(jac.operator_norm())))
    d = math.prod(x_in.shape[1:])
    t_j = float(np.mean(_xp.to_numpy(jac.frobenius_norm()))) / math.sqrt(d)
    h_j = float(np.nanmean(_xp.to_numpy(jac.entropy(on_zero="nan"))))
    details: dict[str, Any] = {}

    if method == "dense":
        g = Spectrum.from_matrix(param_jacobian(model, x))
        s_theta = float(np.max(_xp.to_numpy(g.operator_norm())))
        lam_k = np.linalg.eigvalsh(_xp.to_numpy(ntk(model, x)))
        lam_h = np.linalg.eigvalsh(_xp.to_numpy(hessian(model, x, y, loss)))
        k_max, k_min, tr_k = float(lam_k[-1]), float(lam_k[0]), float(np.sum(lam_k))
        h_max = float(lam_h[-1])
        pos = lam_h[lam_h > max(lam_h[-1], 0.0) * max(p, 1) * np.finfo(float).eps]
        h_k, h_h = _entropy_from_values(np.clip(lam_k, 0.0, None)), _entropy_from_values(lam_h)
    else:
        kop_full = ntk_operator(model, x)
        if n * c <= dense_limit:
            # N·C products form K exactly; Lanczos for its smallest eigenvalue and SLQ for its
            # entropy would cost more products than that, and be approximate
            k_dense = _xp.to_numpy(
                kop_full.matmat(xp.eye(n * c, dtype=model.dtype, device=_xp.device(x)))
            )
            k_dense = 0.5 * (k_dense + k_dense.T)
            blocks = [
                np.linalg.eigvalsh(k_dense[i * c : (i + 1) * c, i * c : (i + 1) * c])
                for i in range(n)
            ]
            lam_k = np.linalg.eigvalsh(k_dense)
            k_max, k_min, tr_k = float(lam_k[-1]), float(lam_k[0]), float(np.trace(k_dense))
            h_k = _entropy_from_values(np.clip(lam_k, 0.0, None))
            ntk_details: Any = "formed from N·C products"
        else:
            blocks = []
            for i in range(n):
                kop = ntk_operator(model, x[i : i + 1, ...])
                eye = xp.eye(c, dtype=model.dtype, device=_xp.device(x))
                blocks.append(np.linalg.eigvalsh(_xp.to_numpy(kop.matmat(eye))))
            tr_k = float(sum(np.sum(b) for b in blocks))
            top_k = eigsh(kop_full, 1, which="LA", tol=tol, seed=seed)
            bot_k = eigsh(kop_full, 1, which="SA", tol=tol, seed=seed)
            k_max = float(_xp.to_numpy(top_k.values)[0])
            k_min = float(_xp.to_numpy(bot_k.values)[0])
            h_k = _slq_entropy(kop_full, num_probes, num_steps, seed, tr_k)
            ntk_details = (top_k, bot_k)
        s_theta = math.sqrt(max(0.0, max(float(b[-1]) for b in blocks)))
        hop = hessian_operator(model, x, y, loss)
        h_top = eigsh(hop, min(6, p), which="LA", tol=tol, seed=seed)
        lam_h = _xp.to_numpy(h_top.values)
        h_max = float(lam_h[0])
        pos = lam_h[lam_h > 0]
        h_h = _slq_entropy(hop, num_probes, num_steps, seed, None)
        details = {"ntk_lanczos": ntk_details, "hessian_lanczos": h_top}

    s_k = math.sqrt(max(k_max, 0.0) / n)
    s_h = math.sqrt(max(h_max, 0.0) / beta) if beta > 0 else 0.0
    components = {"forward": s_j, "parameter": s_theta, "ntk": s_k, "curvature": s_h}
    binding = max(components, key=components.get)
    # singular (κ = ∞) when λ_min ≤ size · eps · λ_max, as condition_number's default rtol
    singular = k_min <= n * c * float(np.finfo(float).eps) * max(k_max, 0.0)
    kappa_k = math.inf if singular else k_max / k_min
    kappa_h = float(pos.max() / pos.min()) if pos.size else math.inf
    return GMSIResult(
        value=_aggregate(components, aggregation),
        components=components,
        binding=binding,
        typical={"forward": t_j, "ntk": math.sqrt(max(tr_k, 0.0) / (n * n * c))},
        entropies={"jacobian": h_j, "ntk": h_k, "hessian": h_h},
        effective_ranks={"jacobian": math.exp(h_j), "ntk": math.exp(h_k), "hessian": math.exp(h_h)},
        ntk_condition_number=kappa_k,
        hessian_condition_number=kappa_h,
        residual_curvature_dominates=bool(s_h > s_k * (1 + 1e-9)),
        beta=beta,
        method=method,
        aggregation=aggregation,
        details=details,
    )


def _slq_entropy(
    op: Any, num_probes: int, num_steps: int, seed: int, trace_abs: float | None
) -> float:
    """``H = log Σ|λ| − Σ |λ| log |λ| / Σ|λ|`` with both sums by SLQ (exact trace if known)."""
    total = trace_abs
    if total is None:
        total = trace_function(
            op, "abs", num_probes=num_probes, num_steps=num_steps, seed=seed
        ).estimate
    if not total > 0:
        return float("nan")

    def xlogx(t: np.ndarray) -> np.ndarray:
        a = np.abs(t)
        return np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)

    s = trace_function(op, xlogx, num_probes=num_probes, num_steps=num_steps, seed=seed).estimate
    return float(math.log(total) - s / total)
