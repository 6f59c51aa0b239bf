"""Model-level stability diagnostics: Jacobian spectra, layer gains and the GMSI.

* :func:`jacobian_spectra` — per-sample input-Jacobian spectra and :ref:`theory-spectra`
  statistics.
* :func:`gmsi` — the Global Matrix Stability Index of :ref:`theory-gmsi`, in
  :mod:`specinterp.stability_index` (importable from here too): four component scales in one
  unit (a gain), ``GMSI = max(s_J, s_θ, s_K, s_H)``, with typical counterparts, entropies and
  conditioning.
* :func:`~specinterp.radius.certified_radius` — T4, in :mod:`specinterp.radius` (importable
  from here too).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _xp
from ._guards import finite_result
from ._progress import counted_range
from .capabilities import JacobianFactor, ProductForm, use
from .errors import ModelError
from .model import as_model, input_space
from .operators import DEFAULT_MAX_BYTES, input_jacobian
from .radius import partial_products
from .spectra import Spectrum

Array = Any

__all__ = [
    "JacobianSpectra",
    "LayerGains",
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
    """The :ref:`theory-spectra` statistics of every per-sample input Jacobian ``J_i = ∂f/∂x(x_i)``.

    Entropy-type statistics and the stable rank of a zero Jacobian are NaN (``on_zero="nan"``).
    A model that offers ``input_jacobian_factor`` hands over small matrices with the singular
    values of the ``C × d`` Jacobians — ``C × n_1`` from an arraynet MLP's product form, the
    ``C × C`` R factors of ``J_iᵀ = Q_i R_i`` from an arraynet CNN on NumPy, ``(P·r) × d`` from
    a torch language model's linear head of width ``r`` — so the ``(N, C, d)`` tensor is not
    formed and the per-sample SVDs are smaller; otherwise the Jacobians are formed within
    ``max_bytes``, a chunk of samples at a time where all of them would not fit.
    """
    s = _jacobian_spectrum(as_model(model), x, max_bytes)
    if _xp.backend_name(_xp.namespace(s.values)) == "jax":  # eight statistics, one program
        stats = _jax_statistics(s.shape)(s.values, s._relative)
    else:
        stats = _statistics(s)
    return JacobianSpectra(s.values, *stats)


def _statistics(s: Spectrum) -> tuple[Array, ...]:
    """The eight statistics of :class:`JacobianSpectra` after the singular values, in order."""
    return (
        s.entropy(on_zero="nan"),
        s.entropy(normalized=True, on_zero="nan") if s.r >= 2 else s.entropy(on_zero="nan"),
        s.effective_rank(on_zero="nan"),
        s.stable_rank(on_zero="nan"),
        s.condition_number(),
        s.attribution_condition_number(on_zero="nan"),
        s.typical_gain(),
        s.operator_norm(),
    )


@functools.cache
def _jax_statistics(shape: tuple[int, int]) -> Any:
    """:func:`_statistics` compiled for JAX (eager JAX dispatches ~40 small ops one by one)."""
    import jax

    def stats(values: Array, relative: Array | None) -> tuple[Array, ...]:
        return _statistics(Spectrum(values=values, shape=shape, _relative=relative))

    return jax.jit(stats)


def _jacobian_spectrum(model: Any, x: Array, max_bytes: int | None) -> Spectrum:
    """Per-sample spectra from the model's Jacobian factor or the dense Jacobians.

    The statistics are per sample, so the batch may go a chunk of samples at a time: each
    chunk's factor ``(m, a, b)`` or dense ``(m, C, d)`` stays within the budget (one array, as
    :func:`input_jacobian` checks), and only a single sample over it raises
    :class:`~specinterp.errors.MemoryBudgetError`. Token ids are chunked before they are
    embedded; an embedded view handed over directly (``Model.bound_to_ids``: bound to the ids
    of all its samples) is computed in one call.
    """
    model.check_input(x)  # before any indexing: a scalar or an empty batch gets its message
    n = int(x.shape[0])
    if getattr(model, "bound_to_ids", False):  # an embedded view: one call on all its samples
        try:
            return _factor_spectrum(use(model, JacobianFactor, x), *_dims(model, x))
        except NotImplementedError:
            return Spectrum.from_matrix(input_jacobian(model, x, max_bytes=max_bytes))
    view, inputs = input_space(model, x[:1, ...])
    c, d = _dims(view, inputs)
    try:
        size = math.prod(use(view, JacobianFactor, inputs).shape)  # one sample's factor
    except NotImplementedError:
        size = None
    limit = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    itemsize = view.xp.finfo(view.dtype).bits // 8
    per = max(1, limit // (itemsize * (c * d if size is None else size)))
    starts = range(0, n, per) if per >= n else counted_range(
        f"Jacobian spectra: {n} samples, {per} at a time", n, per
    )  # fmt: skip
    parts = []
    for i in starts:
        view, inputs = input_space(model, x[i : i + per, ...])
        if size is None:
            parts.append(Spectrum.from_matrix(input_jacobian(view, inputs, max_bytes=max_bytes)))
        else:
            parts.append(_factor_spectrum(use(view, JacobianFactor, inputs), c, d))
    if len(parts) == 1:
        return parts[0]
    xp = view.xp
    relative = None if parts[0]._relative is None else [s._relative for s in parts]
    return Spectrum(
        values=xp.concat([s.values for s in parts], axis=0),
        shape=(c, d),
        _relative=None if relative is None else xp.concat(relative, axis=0),
    )


def _dims(model: Any, x: Array) -> tuple[int, int]:
    """``(C, d)`` of each sample's Jacobian: flattened outputs by flattened inputs."""
    return math.prod(model.output_shape(x)), math.prod(x.shape[1:])


def _factor_spectrum(b: Array, c: int, d: int) -> Spectrum:
    """The spectra of ``J_i`` from factors ``B_i`` with the same nonzero singular values."""
    xp, n = _xp.namespace(b), int(b.shape[0])
    values = Spectrum.from_matrix(b).values  # min(b.shape[1:]) values, descending
    rank = int(values.shape[1])
    if rank < min(c, d):  # rank J_i ≤ rank < min(C, d): the remaining singular values are 0
        zeros = xp.zeros((n, min(c, d) - rank), dtype=values.dtype, device=_xp.device(b))
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


_GMSI_NAMES = ("GMSIInputs", "GMSIResult", "curvature_max", "gmsi")


def __getattr__(name: str) -> Any:
    """``gmsi`` and its result types, importable from here too.

    They live in :mod:`specinterp.stability_index`, which builds on this module.
    """
    if name in _GMSI_NAMES:
        from . import stability_index

        return getattr(stability_index, name)
    raise AttributeError(f"module 'specinterp.diagnostics' has no attribute {name!r}")
