"""Attribution maps and their robustness (:ref:`theory-attribution`), through any adapter's VJPs.

Maps for output ``c`` at ``x`` (batched; ``target`` is one class per sample or one for all):
saliency ``∂f_c/∂x``; input × gradient; SmoothGrad (Smilkov et al. 2017); Integrated
Gradients (Sundararajan et al. 2017) by Gauss–Legendre or trapezoidal quadrature, with its
completeness error. Robustness of a map ``a(·)`` under perturbations: max- and
average-sensitivity (Yeh et al. 2019), local Lipschitz estimate (Alvarez-Melis & Jaakkola
2018), top-k intersection and Spearman rank correlation (Ghorbani, Abid & Zou 2019), relative
input stability (Agarwal et al. 2022) and the Fréchet distance between Gaussian fits of two
sets of maps. Maps of a model on token ids are taken with respect to the token embeddings;
the perturbation metrics move their inputs continuously, so for such a model they take the
embeddings themselves (``model_e, e = specinterp.model.input_space(model, ids)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import _xp
from ._guards import finite_result
from .errors import DTypeError, ShapeError
from .model import input_space

Array = Any
Explainer = Callable[[Array], Array]
Perturbation = Literal["l2", "linf", "gaussian"]

__all__ = [
    "IntegratedGradients",
    "average_sensitivity",
    "frechet_distance",
    "input_x_gradient",
    "integrated_gradients",
    "local_lipschitz",
    "max_sensitivity",
    "perturbations",
    "relative_input_stability",
    "saliency",
    "smoothgrad",
    "spearman_correlation",
    "topk_intersection",
]


def _cotangent(model: Any, x: Array, target: Any) -> Array:
    xp = model.xp
    z = model.apply(x)
    n, c = int(z.shape[0]), int(z.shape[1])
    t = np.asarray(_xp.to_numpy(target) if hasattr(target, "shape") else target)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, n)):
        raise ShapeError(
            f"target must be one class index or one per sample, shape ({n},); got shape {t.shape}"
        )
    t = np.broadcast_to(t, (n,))
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"target must hold integer class indices; got {t.dtype}")
    if np.any(t < 0) or np.any(t >= c):
        raise ValueError(f"target class out of range: the model has {c} outputs (0..{c - 1})")
    onehot = np.zeros((n, c))
    onehot[np.arange(n), t] = 1.0
    return xp.asarray(onehot, dtype=z.dtype, device=_xp.device(z))


@finite_result("saliency map")
def saliency(model: Any, x: Array, target: Any) -> Array:
    """``∂f_c/∂x`` for each sample (shape of ``x``); one VJP of the batch.

    At token ids the map is ``∂f_c/∂e`` over the token embeddings ``e`` ``(N, T, d)``
    (:func:`specinterp.model.input_space`); ``target`` indexes the flattened outputs.
    """
    model, x = input_space(model, x)
    return model.vjp_input(x, _cotangent(model, x, target))


@finite_result("attribution map")
def input_x_gradient(model: Any, x: Array, target: Any) -> Array:
    """``x ⊙ ∂f_c/∂x`` (at token ids: ``e ⊙ ∂f_c/∂e``)."""
    model, x = input_space(model, x)
    return x * saliency(model, x, target)


@finite_result("attribution map")
def smoothgrad(
    model: Any,
    x: Array,
    target: Any,
    *,
    stdev: float = 0.1,
    num_samples: int = 25,
    seed: int | np.random.Generator | None = 0,
    noise: Array | None = None,
) -> Array:
    """SmoothGrad ``E_{ξ ~ N(0, s² I)} ∂f_c/∂x (x + ξ)`` by Monte Carlo.

    ``noise`` (shape ``(N, num_samples, *x.shape[1:])``) replaces the seeded Gaussian draws,
    e.g. to reproduce another library's samples exactly.
    """
    model, x = input_space(model, x)
    xp = model.xp
    n = int(x.shape[0])
    if noise is None:
        if not stdev > 0 or num_samples < 1:
            raise ValueError("stdev must be positive and num_samples ≥ 1")
        gen = _xp.as_generator(seed, xp, _xp.device(x))
        noise = gen.normal((n, num_samples, *x.shape[1:]), dtype=x.dtype, scale=stdev)
    k = int(noise.shape[1])
    noisy = xp.reshape(x[:, None, ...] + noise, (n * k, *x.shape[1:]))
    t = np.repeat(np.broadcast_to(np.asarray(target), (n,)), k)
    grads = saliency(model, noisy, t)
    return xp.mean(xp.reshape(grads, (n, k, *x.shape[1:])), axis=1)


@dataclass(frozen=True, eq=False)
class IntegratedGradients:
    """Integrated Gradients and their completeness error ``|Σ IG − (f_c(x) − f_c(x'))|``."""

    attributions: Array
    completeness_error: Array


def _quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1; got {steps}")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if method == "trapezoid":
        if steps < 2:
            raise ValueError("the trapezoidal rule needs steps ≥ 2")
        alphas = np.linspace(0.0, 1.0, steps)
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] *= 0.5
        return alphas, w
    raise ValueError(f"method must be 'gausslegendre' or 'trapezoid'; got {method!r}")


def integrated_gradients(
    model: Any,
    x: Array,
    target: Any,
    *,
    baseline: Array | None = None,
    steps: int = 50,
    method: Literal["gausslegendre", "trapezoid"] = "gausslegendre",
) -> IntegratedGradients:
    """Integrated Gradients ``(x − x') ⊙ ∫₀¹ ∂f_c/∂x(x' + α(x − x')) dα``.

    By quadrature (default: 50-node Gauss–Legendre, Captum's default), batched over all nodes
    in one VJP; ``baseline`` ``x'`` defaults to zeros.
    """
    model, x = input_space(model, x)
    xp = model.xp
    base = xp.zeros_like(x) if baseline is None else baseline
    if tuple(base.shape) != tuple(x.shape):
        raise ShapeError(f"baseline must have the shape of x {tuple(x.shape)}")
    alphas, weights = _quadrature(method, steps)
    n, k = int(x.shape[0]), alphas.size
    a = xp.asarray(alphas, dtype=x.dtype, device=_xp.device(x))
    shape = (1, k) + (1,) * (x.ndim - 1)
    path = base[:, None, ...] + xp.reshape(a, shape) * (x - base)[:, None, ...]
    t = np.broadcast_to(np.asarray(target), (n,))
    grads = saliency(model, xp.reshape(path, (n * k, *x.shape[1:])), np.repeat(t, k))
    w = xp.asarray(weights, dtype=x.dtype, device=_xp.device(x))
    avg = xp.sum(xp.reshape(grads, (n, k, *x.shape[1:])) * xp.reshape(w, shape), axis=1)
    attr = (x - base) * avg
    onehot = _cotangent(model, x, target)
    gap = xp.sum((model.apply(x) - model.apply(base)) * onehot, axis=1)
    total = xp.sum(xp.reshape(attr, (n, -1)), axis=1)
    return IntegratedGradients(attr, xp.abs(total - gap))


# ---------------------------------------------------------------------- perturbations
def perturbations(
    x: Array,
    radius: float,
    num_samples: int,
    *,
    kind: Perturbation = "linf",
    seed: int | np.random.Generator | None = 0,
) -> Array:
    """Seeded perturbations ``δ`` of shape ``(N, num_samples, *x.shape[1:])``.

    Uniform in the L2 or L∞ ball of ``radius``, or Gaussian with per-coordinate standard
    deviation ``radius``.
    """
    if not radius > 0:
        raise ValueError(f"the perturbation radius must be positive; got {radius}")
    if num_samples < 1:
        raise ValueError("num_samples must be ≥ 1")
    xp = _xp.namespace(x)
    gen = _xp.as_generator(seed, xp, _xp.device(x))
    n, d = int(x.shape[0]), math.prod(x.shape[1:])
    shape = (n, num_samples, *x.shape[1:])
    if kind == "linf":
        return gen.uniform(shape, dtype=x.dtype, low=-radius, high=radius)
    if kind == "gaussian":
        return gen.normal(shape, dtype=x.dtype, scale=radius)
    if kind == "l2":
        direction = gen.sphere((n, num_samples, d), dtype=x.dtype)
        r = radius * gen.uniform((n, num_samples, 1), dtype=x.dtype) ** (1.0 / d)
        return xp.reshape(direction * r, shape)
    raise ValueError(f"kind must be 'l2', 'linf' or 'gaussian'; got {kind!r}")


def _perturbed_maps(explain: Explainer, x: Array, deltas: Array) -> tuple[Array, Array]:
    xp = _xp.namespace(x)
    n, k = int(deltas.shape[0]), int(deltas.shape[1])
    base = xp.reshape(explain(x), (n, -1))
    moved = explain(xp.reshape(x[:, None, ...] + deltas, (n * k, *x.shape[1:])))
    return base, xp.reshape(moved, (n, k, -1))


def _deltas(
    x: Array, radius: float, num_samples: int, kind: Perturbation, seed: Any, given: Array | None
) -> Array:
    xp = _xp.namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise DTypeError(
            f"x has dtype {x.dtype}: the robustness metrics move the inputs continuously, and a "
            "perturbation of integers (token ids) would round to none; perturb the embeddings — "
            "model_e, e = specinterp.model.input_space(model, ids), then pass e and an "
            "explainer of model_e (e.g. lambda ee: saliency(model_e, ee, target))"
        )
    return perturbations(x, radius, num_samples, kind=kind, seed=seed) if given is None else given


def max_sensitivity(
    explain: Explainer,
    x: Array,
    *,
    radius: float = 0.02,
    num_samples: int = 10,
    kind: Perturbation = "linf",
    seed: int | np.random.Generator | None = 0,
    deltas: Array | None = None,
    normalize: bool = True,
) -> Array:
    """Max-sensitivity ``max_δ ‖a(x + δ) − a(x)‖ / ‖a(x)‖`` per sample (Yeh et al. 2019).

    With ``normalize=True`` this is Captum's ``sensitivity_max`` (a zero map divides by 1).
    """
    return _sensitivity(explain, x, radius, num_samples, kind, seed, deltas, normalize, "max")


def average_sensitivity(
    explain: Explainer,
    x: Array,
    *,
    radius: float = 0.02,
    num_samples: int = 10,
    kind: Perturbation = "linf",
    seed: int | np.random.Generator | None = 0,
    deltas: Array | None = None,
    normalize: bool = True,
) -> Array:
    """``E_δ ‖a(x + δ) − a(x)‖ / ‖a(x)‖`` per sample (Yeh et al. 2019)."""
    return _sensitivity(explain, x, radius, num_samples, kind, seed, deltas, normalize, "mean")


def _sensitivity(explain, x, radius, num_samples, kind, seed, deltas, normalize, how):
    xp = _xp.namespace(x)
    d = _deltas(x, radius, num_samples, kind, seed, deltas)
    base, moved = _perturbed_maps(explain, x, d)
    diff = xp.linalg.vector_norm(moved - base[:, None, :], axis=-1)
    if normalize:
        nb = xp.linalg.vector_norm(base, axis=-1)
        diff = diff / xp.where(nb == 0, xp.ones_like(nb), nb)[:, None]
    return xp.max(diff, axis=1) if how == "max" else xp.mean(diff, axis=1)


def local_lipschitz(
    explain: Explainer,
    x: Array,
    *,
    radius: float = 0.02,
    num_samples: int = 10,
    kind: Perturbation = "l2",
    seed: int | np.random.Generator | None = 0,
    deltas: Array | None = None,
) -> Array:
    """``max_δ ‖a(x + δ) − a(x)‖ / ‖δ‖`` per sample (Alvarez-Melis & Jaakkola 2018)."""
    xp = _xp.namespace(x)
    d = _deltas(x, radius, num_samples, kind, seed, deltas)
    base, moved = _perturbed_maps(explain, x, d)
    num = xp.linalg.vector_norm(moved - base[:, None, :], axis=-1)
    den = xp.linalg.vector_norm(xp.reshape(d, (int(d.shape[0]), int(d.shape[1]), -1)), axis=-1)
    return xp.max(num / den, axis=1)


def relative_input_stability(
    explain: Explainer,
    x: Array,
    *,
    radius: float = 0.02,
    num_samples: int = 10,
    kind: Perturbation = "linf",
    seed: int | np.random.Generator | None = 0,
    deltas: Array | None = None,
    eps: float = 1e-6,
) -> Array:
    """RIS ``max_δ ‖(a(x+δ) − a(x)) / a(x)‖ / max(‖δ / x‖, eps)`` (Agarwal et al. 2022).

    Element-wise ratios use ``a(x) + eps`` and ``x + eps`` where they vanish (the paper's
    ``ε_min`` guard).
    """
    xp = _xp.namespace(x)
    d = _deltas(x, radius, num_samples, kind, seed, deltas)
    base, moved = _perturbed_maps(explain, x, d)
    safe_a = xp.where(base == 0, xp.full_like(base, eps), base)
    num = xp.linalg.vector_norm((moved - base[:, None, :]) / safe_a[:, None, :], axis=-1)
    xf = xp.reshape(x, (int(x.shape[0]), -1))
    safe_x = xp.where(xf == 0, xp.full_like(xf, eps), xf)
    rel = xp.reshape(d, (int(d.shape[0]), int(d.shape[1]), -1)) / safe_x[:, None, :]
    den = xp.maximum(xp.linalg.vector_norm(rel, axis=-1), eps)
    return xp.max(num / den, axis=1)


# ---------------------------------------------------------------------- comparing maps
def _flat_pair(a: Array, b: Array) -> tuple[Any, Array, Array]:
    xp = _xp.namespace(a, b)
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeError(f"maps must have equal shapes; got {tuple(a.shape)} and {tuple(b.shape)}")
    n = int(a.shape[0])
    return xp, xp.reshape(a, (n, -1)), xp.reshape(b, (n, -1))


def topk_intersection(a: Array, b: Array, k: int) -> Array:
    """Fraction of the ``k`` largest-magnitude features of ``a`` that are among those of ``b``."""
    xp, fa, fb = _flat_pair(a, b)
    d = int(fa.shape[1])
    if not 1 <= k <= d:
        raise ValueError(f"k must satisfy 1 ≤ k ≤ {d}; got {k}")
    ta = xp.argsort(-xp.abs(fa), axis=1, stable=True)[:, :k]
    tb = xp.argsort(-xp.abs(fb), axis=1, stable=True)[:, :k]
    hits = xp.sum(xp.astype(ta[:, :, None] == tb[:, None, :], fa.dtype), axis=(1, 2))
    return hits / k


def spearman_correlation(a: Array, b: Array) -> Array:
    """Spearman rank correlation between each pair of flattened maps (ties broken stably)."""
    xp, fa, fb = _flat_pair(a, b)

    def ranks(m: Array) -> Array:
        return xp.astype(
            xp.argsort(xp.argsort(m, axis=1, stable=True), axis=1, stable=True), fa.dtype
        )

    ra, rb = ranks(fa), ranks(fb)
    ra = ra - xp.mean(ra, axis=1, keepdims=True)
    rb = rb - xp.mean(rb, axis=1, keepdims=True)
    return xp.sum(ra * rb, axis=1) / xp.sqrt(xp.sum(ra**2, axis=1) * xp.sum(rb**2, axis=1))


def _psd_clip(lam: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise (``|λ| ≤ n·eps·λ_max``) set to zero.

    A square root amplifies noise of size ``1e-16`` to ``1e-8``; rank-deficient covariances
    (fewer maps than features) would otherwise carry that into the distance.
    """
    tol = lam.size * np.finfo(np.float64).eps * max(float(np.max(np.abs(lam))), 0.0)
    return np.where(lam > tol, lam, 0.0)


def frechet_distance(maps_a: Array, maps_b: Array, *, ridge: float = 0.0) -> float:
    """Fréchet distance between Gaussian fits of two sets of maps (:ref:`theory-attribution`).

    ``FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)``. The matrix square roots are taken
    by symmetric eigendecompositions whose eigenvalues below ``n · eps · λ_max`` (rounding) are
    set to zero, so rank-deficient covariances (fewer maps than features) are handled without
    inversion and without square-root-amplified noise; ``ridge`` adds
    ``ridge · I`` to both covariances if a strictly positive definite fit is wanted.

    Raises
    ------
    ValueError
        With fewer than two maps in a set (no covariance).

    """
    a = np.asarray(_xp.to_numpy(maps_a), dtype=np.float64)
    b = np.asarray(_xp.to_numpy(maps_b), dtype=np.float64)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("a covariance needs at least two maps in each set")
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    if a.shape[1] != b.shape[1]:
        raise ShapeError(f"maps have {a.shape[1]} and {b.shape[1]} features")
    mu = a.mean(axis=0) - b.mean(axis=0)
    s1 = np.cov(a, rowvar=False) + ridge * np.eye(a.shape[1])
    s2 = np.cov(b, rowvar=False) + ridge * np.eye(a.shape[1])
    lam, vec = np.linalg.eigh(s1)
    root1 = (vec * np.sqrt(_psd_clip(lam))) @ vec.T
    mid = root1 @ s2 @ root1
    cross = np.sum(np.sqrt(_psd_clip(np.linalg.eigvalsh(0.5 * (mid + mid.T)))))
    return float(mu @ mu + np.trace(s1) + np.trace(s2) - 2.0 * cross)
