"""Optional model capabilities: named, checkable protocols with one "not supported" signal.

The :class:`~specinterp.model.Model` protocol is everything the core *needs*. A model may also
offer faster or more exact routes; each is a protocol naming one method:

============================  ==========================================  =====================
capability                    method                                      used by
============================  ==========================================  =====================
:class:`ReusableHVP`          ``hvp_operator(x, y, loss) -> (v ↦ H v)``   Hessian operators
:class:`ReusableGGN`          ``gauss_newton_operator(x, y, loss)``       GGN operators
:class:`CompressedCurvature`  ``compressed_curvature(x, y, loss, ggn)``   curvature ``eigsh``
:class:`NativeInputJacobian`  ``input_jacobian(x) -> (N, C, d)``          dense ``J``
:class:`NativeParamJacobian`  ``param_jacobian(x) -> (N, C, p)``          dense ``G``, NTK
:class:`NativeHessian`        ``loss_hessian(x, y, loss) -> (p, p)``      dense ``H``
:class:`NativeNTK`            ``ntk_gram(x) -> (N·C, N·C)``               self-NTK
:class:`JacobianFactor`       ``input_jacobian_factor(x) -> (N, C, k)``   Jacobian spectra
:class:`ProductForm`          ``layer_factors(x) -> LayerFactors``        T3 gains, T4 radius
:class:`RegionBoundaries`     ``region_boundaries(x, max_bytes)``         T4 radius (CNNs)
:class:`TokenEmbedding`       ``embedded(x) -> (model_e, e)``             inputs that are ids
:class:`WeightMatrices`       ``weight_matrices() -> [(name, W)]``        layer spectra, RMT
:class:`ConvKernels`          ``conv_kernels() -> [ConvKernel]``          conv spectra, RMT
:class:`LastPosition`         ``last_position_model() -> model``          next-token views
============================  ==========================================  =====================

**One signal.** A capability that a model lacks, or that does not apply to this particular
model (``layer_factors`` of a convolutional network), is reported by ``NotImplementedError``:
the core calls every capability through :func:`use`, which raises it for a missing method too,
and falls back to the derived route (or raises a specific library error) on it. Check a model
with ``isinstance(model, ProductForm)`` or :func:`offers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Array = Any

__all__ = [
    "CompressedCurvature",
    "ConvKernel",
    "ConvKernels",
    "JacobianFactor",
    "LastPosition",
    "NativeHessian",
    "NativeInputJacobian",
    "NativeNTK",
    "NativeParamJacobian",
    "ProductForm",
    "RegionBoundaries",
    "ReusableGGN",
    "ReusableHVP",
    "TokenEmbedding",
    "WeightMatrices",
    "offers",
    "use",
]


@runtime_checkable
class ReusableHVP(Protocol):
    """An HVP that reuses work (a forward pass, a compiled function) across products."""

    def hvp_operator(self, x: Array, y: Array, loss: Any) -> Any:
        """``v ↦ H v`` at the fixed batch ``(x, y)``."""
        ...


@runtime_checkable
class ReusableGGN(Protocol):
    """A Gauss–Newton product that reuses work across products."""

    def gauss_newton_operator(self, x: Array, y: Array, loss: Any) -> Any:
        """``v ↦ (1/N) Σ_i G_iᵀ Λ_i G_i v`` at the fixed batch ``(x, y)``."""
        ...


@runtime_checkable
class CompressedCurvature(Protocol):
    """A subspace outside which the Hessian (or GGN) vanishes, and its products inside it."""

    def compressed_curvature(self, x: Array, y: Array, loss: Any, ggn: bool = False) -> Any:
        """``(matvec, m, lift, restrict)`` with ``H = L H̃ Lᵀ`` (:ref:`theory-compression`).

        ``L`` (``p × m``) has orthonormal columns and ``H`` (the GGN with ``ggn``) is zero on
        the complement of its range; ``matvec`` is ``ṽ ↦ H̃ ṽ``, ``lift`` is ``ṽ ↦ L ṽ``,
        ``restrict`` ``v ↦ Lᵀ v``.
        """
        ...


@runtime_checkable
class NativeInputJacobian(Protocol):
    """Dense per-sample input Jacobians by the framework's own route."""

    def input_jacobian(self, x: Array) -> Array:
        """``J_i``, shape ``(N, C, d)``."""
        ...


@runtime_checkable
class NativeParamJacobian(Protocol):
    """Dense per-sample parameter Jacobians by the framework's own route."""

    def param_jacobian(self, x: Array) -> Array:
        """``G_i``, shape ``(N, C, p)``."""
        ...


@runtime_checkable
class NativeHessian(Protocol):
    """The dense loss Hessian by the framework's own compiled route (``jax.hessian``)."""

    def loss_hessian(self, x: Array, y: Array, loss: Any) -> Array:
        """``H``, shape ``(p, p)``, exactly symmetric."""
        ...


@runtime_checkable
class NativeNTK(Protocol):
    """The self-NTK ``G Gᵀ`` as one compiled program (JAX: Jacobian and Gram fused by XLA)."""

    def ntk_gram(self, x: Array) -> Array:
        """``K``, shape ``(N·C, N·C)``, sample-major."""
        ...


@runtime_checkable
class JacobianFactor(Protocol):
    """Small per-sample matrices with exactly the nonzero singular values of ``J_i``."""

    def input_jacobian_factor(self, x: Array) -> Array:
        """``B_i`` ``(N, a, b)``, ``min(a, b) ≤ min(C, d)``: ``σ(B_i) = σ(J_i)`` (nonzero part)."""
        ...


@runtime_checkable
class ProductForm(Protocol):
    """The chain-rule product form of an MLP (docs/theory.md#theory-notation)."""

    def layer_factors(self, x: Array) -> Any:
        """Weights, activation-derivative diagonals and pre-activations at ``x``."""
        ...


@runtime_checkable
class RegionBoundaries(Protocol):
    """Activation-region boundaries of a piecewise-linear network (T4)."""

    def region_boundaries(self, x: Array, max_bytes: int) -> Any:
        """Chunks of ``(a_j, ∇a_j)`` pairs, within ``max_bytes`` each."""
        ...


@runtime_checkable
class TokenEmbedding(Protocol):
    """The embedded view of a model on token ids (docs/theory.md#theory-token-inputs)."""

    def embedded(self, x: Array) -> tuple[Any, Array]:
        """``(model_e, e)`` with ``e = E[x]`` and ``model_e`` taking embeddings."""
        ...


@runtime_checkable
class WeightMatrices(Protocol):
    """The model's weight matrices, for layer spectra and random-matrix diagnostics."""

    def weight_matrices(self) -> list[tuple[str, Array]]:
        """``[(name, W)]`` with ``W`` 2-d."""
        ...


@runtime_checkable
class LastPosition(Protocol):
    """A sequence model that can compute its outputs at the last position alone.

    A causal language model's head then maps one hidden state per sequence instead of ``T``
    (Hugging Face's ``logits_to_keep=1``): the same function of the inputs as the last
    position of the full outputs, for a ``T``-th of the head's work.
    """

    def last_position_model(self) -> Any:
        """The same model with outputs ``(N, 1, *out[1:])``: those at the last position."""
        ...


@dataclass(frozen=True)
class ConvKernel:
    """One 2-d convolution of a model, as much of it as its exact spectrum needs.

    Attributes
    ----------
    name : str
        The kernel parameter's name.
    kernel : array ``(c_out, c_in / groups, k_h, k_w)``
        In the model's namespace (torch's layout, whatever the framework's own).
    stride : (int, int)
    input_size : (int, int) or None
        Spatial size of the layer's input for the model's input shape (None: unknown).
    output_size : (int, int) or None
        Spatial size of its output (None: unknown).
    circular : bool
        Whether the layer pads circularly. With an output of the input size over the stride
        the Fourier spectrum is then the layer's exactly; otherwise it is the circular
        surrogate of Sedghi, Gupta & Long (2019).
    groups, dilation : int, (int, int)
        The exact spectrum is computed for ``groups = 1`` and ``dilation = (1, 1)``.

    """

    name: str
    kernel: Array
    stride: tuple[int, int]
    input_size: tuple[int, int] | None
    output_size: tuple[int, int] | None = None
    circular: bool = False
    groups: int = 1
    dilation: tuple[int, int] = (1, 1)


@runtime_checkable
class ConvKernels(Protocol):
    """The model's 2-d convolutions, for exact convolution spectra (:ref:`theory-conv`)."""

    def conv_kernels(self, input_shape: Sequence[int] | None = None) -> list[ConvKernel]:
        """Every 2-d convolution, with input sizes for ``input_shape`` (default: the model's)."""
        ...


def _method_name(capability: type) -> str:
    names = [n for n in vars(capability) if not n.startswith("_")]
    if len(names) != 1:  # pragma: no cover - a programming error in this module
        raise TypeError(f"{capability.__name__} must name exactly one method")
    return names[0]


def offers(model: Any, capability: type) -> bool:
    """Whether ``model`` has the capability's method (it may still not apply, see :func:`use`)."""
    return callable(getattr(model, _method_name(capability), None))


def use(model: Any, capability: type, *args: Any, **kwargs: Any) -> Any:
    """Call the capability's method on ``model``.

    Raises
    ------
    NotImplementedError
        If the model does not offer the capability, or the method raises it because the
        capability does not apply to this model — the one "not supported" signal.

    """
    name = _method_name(capability)
    method = getattr(model, name, None)
    if not callable(method):
        raise NotImplementedError(f"{type(model).__name__} does not offer {name}")
    return method(*args, **kwargs)
