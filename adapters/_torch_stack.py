"""An ``nn.Sequential`` of bilinear layers, activations and pooling, as the R-operator sees it.

:func:`bilinear_stack` reads the module as stages: a bilinear layer (:mod:`._torch_bilinear`),
the elementwise activation after it, and the parameter-free linear or piecewise-linear maps
(:class:`FixedMap`: flattening, max and average pooling, dropout in evaluation mode, a batch
normalisation's normalising map) that take the previous stage's output to its input, carried
through their Jacobian at the batch and its transpose (:ref:`theory-mlp-hvp`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._torch_bilinear import CONV, Bilinear, ChannelScale, Convolution, Unweighted, per_channel
from ._torch_mlp import ELEMENTWISE

__all__ = ["FixedMap", "Stage", "bilinear_stack"]

Tensor = torch.Tensor


#: parameter-free modules that are linear or piecewise linear in their input (no curvature)
FIXED_MAPS = (
    nn.Flatten, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Identity,
)  # fmt: skip
_BATCH_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: the identity in evaluation mode (a module in training mode is refused before it gets here)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class FixedMap:
    """A parameter-free module ``P`` between two stages, linearised where the forward pass met it.

    ``P`` is linear (flattening, average pooling) or piecewise linear (max pooling): its
    Jacobian ``P'`` at the batch's activations is the map the R-operator carries directions
    through, ``P'ᵀ`` the one cotangents come back through, and its second derivative is zero
    (almost everywhere; taken as zero at ties, as automatic differentiation takes it).
    """

    def __init__(self, module: Any) -> None:
        self.module = module
        self.pullback: Any = None

    def forward(self, h: Tensor) -> Tensor:
        """``P(h)`` at the forward pass, recording its transpose there."""
        out, self.pullback = torch.func.vjp(self.module, h)
        return out

    def linear(self, r: Tensor) -> Tensor:
        """``P'(h) r``: ``P(r)`` for a linear ``P`` (subclasses linearise the others)."""
        return self.module(r)

    def adjoint(self, g: Tensor) -> Tensor:
        """``P'(h)ᵀ g``."""
        return self.pullback(g)[0]


class Flatten(FixedMap):
    """``nn.Flatten()``: a reshape and its inverse, with no automatic differentiation."""

    def forward(self, h: Tensor) -> Tensor:
        self.shape = h.shape
        return torch.flatten(h, 1)

    def linear(self, r: Tensor) -> Tensor:
        return torch.flatten(r, 1)

    def adjoint(self, g: Tensor) -> Tensor:
        return g.reshape(self.shape)


class MaxPool(FixedMap):
    """Max pooling: ``P'(h) r`` gathers ``r`` at the maxima's indices, found once."""

    def forward(self, h: Tensor) -> Tensor:
        out = super().forward(h)
        with_indices = copy.copy(self.module)
        with_indices.return_indices = True
        self.index = with_indices(h)[1].flatten(2)
        self.shape = out.shape
        return out

    def linear(self, r: Tensor) -> Tensor:
        return torch.gather(r.flatten(2), 2, self.index).view(self.shape)


class Normalise(FixedMap):
    """``h ↦ (h − μ) s`` per channel with ``s = 1/√(v + ε)``; ``P'`` and ``P'ᵀ`` scale by ``s``."""

    def __init__(self, mean: Tensor, var: Tensor, eps: float) -> None:
        self.mean, self.scale = mean, torch.rsqrt(var + eps)

    def forward(self, h: Tensor) -> Tensor:
        return (h - per_channel(self.mean, h.ndim - 2)) * per_channel(self.scale, h.ndim - 2)

    def linear(self, r: Tensor) -> Tensor:
        return r * per_channel(self.scale, r.ndim - 2)

    def adjoint(self, g: Tensor) -> Tensor:
        return self.linear(g)


@dataclass
class Stage:
    """One bilinear layer of a stack.

    Its module name, its :class:`Bilinear`, the activation after it (``None``: none), and the
    :class:`FixedMap` s (flattening, pooling) that take the previous stage's output to its input.
    """

    name: str
    layer: Bilinear
    act: Any
    maps: list[FixedMap]


def _bilinear(module: Any, tensors: dict[str, Tensor], name: str) -> Bilinear | None:
    if f"{name}.weight" not in tensors or parametrize.is_parametrized(module):
        return None  # weight_norm, spectral_norm: the weight is computed, not a parameter
    if isinstance(module, nn.Linear):
        return Bilinear()
    if type(module) in CONV and module.padding_mode == "zeros":
        if isinstance(module.padding, str):  # "same" / "valid": not the tuple the adjoints need
            return None
        return Convolution(module, tensors[f"{name}.weight"])
    return None


def _normalisation(module: Any) -> tuple[FixedMap, Bilinear] | None:
    """A batch normalisation in evaluation mode, as a fixed map and a :class:`ChannelScale`.

    With running statistics it is the fixed affine map ``h ↦ (h − μ)/√(v + ε)`` followed by a
    :class:`ChannelScale` layer (``γ, β``) or, without them, :class:`Unweighted`. In training
    mode, or without running statistics, it normalises with the batch's own statistics, which
    couples the samples nonlinearly: ``None``.
    """
    if module.training or module.running_mean is None:
        return None
    norm = Normalise(module.running_mean, module.running_var, module.eps)
    return norm, ChannelScale() if module.affine else Unweighted()


def _fixed_map(module: Any) -> FixedMap | None:
    if isinstance(module, nn.Flatten):
        return Flatten(module) if module.start_dim == 1 and module.end_dim == -1 else None
    if isinstance(module, _DROPOUT) and not module.training:
        return FixedMap(nn.Identity())
    if isinstance(module, FIXED_MAPS) and not getattr(module, "return_indices", False):
        return MaxPool(module) if hasattr(module, "return_indices") else FixedMap(module)
    return None


def _leaves(module: Any, prefix: str = "") -> Any:
    """``(dotted name, module)`` of a Sequential's children, nested Sequentials expanded."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


def bilinear_stack(module: Any, tensors: dict[str, Tensor]) -> list[Stage]:
    """The stages of ``[P…] B [φ] [P…] B [φ] … B`` with bilinear ``B``.

    Each bilinear layer may be followed by one elementwise activation ``φ``, and any number of
    fixed maps ``P`` (:data:`FIXED_MAPS`: flattening, max and average pooling; dropout in
    evaluation mode, the identity; a batch normalisation's normalising map, its ``γ, β`` a
    :class:`ChannelScale` stage) may come between
    it and the next bilinear layer; the stack ends with a bilinear layer. Nested
    ``nn.Sequential`` blocks (``features``, ``classifier``) are read as one stack.

    Raises
    ------
    NotImplementedError
        For any other module (residual blocks, layer normalisation, a final activation, …).

    """
    stages: list[Stage] = []
    maps: list[FixedMap] = []
    for name, child in _leaves(module) if isinstance(module, nn.Sequential) else []:
        fixed = _fixed_map(child)
        if fixed is not None:
            maps.append(fixed)
            continue
        if isinstance(child, _BATCH_NORM):
            norm = _normalisation(child)
            if norm is None:
                break
            stages.append(Stage(name, norm[1], None, [*maps, norm[0]]))
            maps = []
            continue
        if isinstance(child, ELEMENTWISE) and stages and stages[-1].act is None and not maps:
            stages[-1].act = child
            continue
        layer = _bilinear(child, tensors, name)
        if layer is None:
            break
        stages.append(Stage(name, layer, None, maps))
        maps = []
    else:
        if stages and stages[-1].act is None and not maps:
            return stages
    raise NotImplementedError(
        "the layer-wise products are known for an nn.Sequential of Linear / zero-padded ConvNd "
        "layers, each optionally followed by an elementwise activation and by flattening or "
        "pooling, ending with a Linear or ConvNd"
    )
