"""An ``nn.Sequential`` of bilinear layers, activations and pooling, as the R-operator sees it.

A *bilinear* layer computes ``z = A(W, h) + b`` with ``A`` linear in the weight ``W`` for a
fixed input ``h`` and linear in ``h`` for a fixed ``W``: ``nn.Linear`` (``A = h Wᵀ``) and
``nn.Conv1d/2d/3d`` with zero padding (a correlation). Each :class:`Bilinear` supplies ``A``
and its two adjoints — the input adjoint ``A_h^*(g)`` (``g W`` for a dense layer, the
transposed convolution for a convolution) and the weight adjoint ``A_W^*(g)`` (``gᵀ h``, the
correlation of ``g`` with the inputs) — which is all the layer-wise Hessian and GGN products
need (:ref:`theory-mlp-hvp`). Between two layers, parameter-free linear or piecewise-linear
maps (:class:`FixedMap`: flattening, max and average pooling) are carried through their
Jacobian at the batch and its transpose.

Two-dimensional convolutions run in the channels-last layout, where oneDNN's kernels on a CPU
are 3–7× faster than on NCHW tensors (the gradient-input pass of a 16-channel 3×3 convolution:
1.1 ms against 5.8 ms at batch 256); the results are laid out as the module's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._torch_mlp import ELEMENTWISE

__all__ = ["Bilinear", "Stage", "bilinear_stack"]

Tensor = torch.Tensor
_CONV = {nn.Conv1d: torch.nn.functional.conv1d, nn.Conv2d: torch.nn.functional.conv2d,
         nn.Conv3d: torch.nn.functional.conv3d}  # fmt: skip


class Bilinear:
    """``A(W, h)`` of a dense layer, and its adjoints in ``h`` and in ``W``."""

    #: the number of axes of the (batched) input the layer maps
    input_ndim = 2

    def layout(self, t: Tensor) -> Tensor:
        """``t`` in the layout this layer's kernels are fastest on (a dense layer: as it is)."""
        return t

    def apply(self, h: Tensor, w: Tensor, out: Tensor | None = None) -> Tensor:
        """``A(w, h)``, added to ``out`` in place when it is given."""
        return h @ w.T if out is None else out.addmm_(h, w.T)

    def apply_pair(self, r: Tensor, w: Tensor, fixed: Tensor, dw: Tensor | None) -> Tensor:
        """``A(w, r) + A(dw, fixed)``, the second term only with ``dw``.

        ``fixed`` is the same tensor at every call (a layer input ``h_{l−1}`` of the forward
        pass).
        """
        z = self.apply(r, w)
        return z if dw is None else self.apply(fixed, dw, out=z)

    def input_adjoint_pair(
        self, g: Tensor, w: Tensor, fixed: Tensor | None, dw: Tensor | None, h: Tensor
    ) -> Tensor:
        """``A_h^*(g)`` at ``w`` plus ``A_h^*(fixed)`` at ``dw`` (where both are given).

        ``fixed`` is the same tensor at every call (a back-propagated loss gradient ``δ_l``).
        """
        e = self.input_adjoint(g, w, h)
        return e if fixed is None or dw is None else self.input_adjoint(fixed, dw, h, out=e)

    def bias(self, b: Tensor) -> Tensor:
        """``b`` shaped to broadcast over ``A``'s output."""
        return b

    def input_adjoint(self, g: Tensor, w: Tensor, h: Tensor, out: Tensor | None = None) -> Tensor:
        """``A_h^*(g)`` at weight ``w`` (``h``: a tensor of the input's shape)."""
        return g @ w if out is None else out.addmm_(g, w)

    def weight_adjoint(self, g: Tensor, h: Tensor, out: Tensor | None = None) -> Tensor:
        """``A_W^*(g)`` at input ``h``: ``Σ_i g_i h_iᵀ`` for a dense layer."""
        return g.T @ h if out is None else out.addmm_(g.T, h)

    def bias_adjoint(self, g: Tensor) -> Tensor:
        """The sum of ``g`` over everything but its channels."""
        return g.sum(0)


class Convolution(Bilinear):
    """``A(W, h)`` of an ``nn.ConvNd`` with zero padding; adjoints by ``convolution_backward``."""

    def __init__(self, conv: Any, weight: Tensor) -> None:
        self.weight = weight  # its shape for the weight adjoint
        self.fn = _CONV[type(conv)]
        self.nd = len(conv.kernel_size)
        self.input_ndim = self.nd + 2
        self.args = (list(conv.stride), list(conv.padding), list(conv.dilation))
        self.groups = int(conv.groups)
        self._buffers: dict[tuple[int, int], Tensor] = {}

    def layout(self, t: Tensor) -> Tensor:
        if t.ndim == 4:
            return t.contiguous(memory_format=torch.channels_last)
        return t.contiguous()

    def apply(self, h: Tensor, w: Tensor, out: Tensor | None = None) -> Tensor:
        stride, padding, dilation = self.args
        z = self.fn(h, self.layout(w), None, stride, padding, dilation, self.groups)
        return z if out is None else out.add_(z)

    def bias(self, b: Tensor) -> Tensor:
        return b.view(-1, *([1] * self.nd))

    def _beside(self, fixed: Tensor, channels: int) -> Tensor:
        """A buffer of ``channels`` free channels before a copy of ``fixed``'s channels.

        Kept for the operator's life: two convolutions of the same geometry are one over the
        concatenated channels, and one oneDNN call on 2c channels costs less than two on c (the
        input adjoint of a 16-channel layer at batch 256: 1.5 ms against 3.6 ms).
        """
        key = (id(fixed), channels)
        buf = self._buffers.get(key)
        if buf is None:
            n, c, *rest = fixed.shape
            buf = self.layout(fixed.new_empty((n, channels + c, *rest)))
            buf[:, channels:] = fixed
            self._buffers[key] = buf
        return buf

    def apply_pair(self, r: Tensor, w: Tensor, fixed: Tensor, dw: Tensor | None) -> Tensor:
        if dw is None or self.groups != 1:
            return super().apply_pair(r, w, fixed, dw)
        buf = self._beside(fixed, int(r.shape[1]))
        buf[:, : r.shape[1]] = r
        return self.apply(buf, torch.cat([w, dw], 1))

    def input_adjoint_pair(
        self, g: Tensor, w: Tensor, fixed: Tensor | None, dw: Tensor | None, h: Tensor
    ) -> Tensor:
        if fixed is None or dw is None or self.groups != 1:
            return super().input_adjoint_pair(g, w, fixed, dw, h)
        buf = self._beside(fixed, int(g.shape[1]))
        buf[:, : g.shape[1]] = g
        return self.input_adjoint(buf, torch.cat([w, dw], 0), h)

    def _backward(self, g: Tensor, h: Tensor, w: Tensor, mask: list[bool]) -> tuple[Any, ...]:
        stride, padding, dilation = self.args
        return torch.ops.aten.convolution_backward(
            g, h, self.layout(w), None, stride, padding, dilation, False, [0] * self.nd,
            self.groups, mask,
        )  # fmt: skip

    def input_adjoint(self, g: Tensor, w: Tensor, h: Tensor, out: Tensor | None = None) -> Tensor:
        gi = self._backward(g, h, w, [True, False, False])[0]
        return gi if out is None else out.add_(gi)

    def weight_adjoint(self, g: Tensor, h: Tensor, out: Tensor | None = None) -> Tensor:
        gw = self._backward(g, h, self.weight, [False, True, False])[1]
        return gw if out is None else out.add_(gw)

    def bias_adjoint(self, g: Tensor) -> Tensor:
        return g.sum([0, *range(2, g.ndim)])


#: parameter-free modules that are linear or piecewise linear in their input (no curvature)
FIXED_MAPS = (
    nn.Flatten, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Identity,
)  # fmt: skip
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
        self.at: Tensor | None = None
        self.pullback: Any = None

    def forward(self, h: Tensor) -> Tensor:
        """``P(h)`` at the forward pass, recording where it is linearised."""
        self.at = h
        out, self.pullback = torch.func.vjp(self.module, h)
        return out

    def linear(self, r: Tensor) -> Tensor:
        """``P'(h) r`` (forward mode at the recorded ``h``)."""
        return torch.func.jvp(self.module, (self.at,), (r,))[1]

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
    if isinstance(module, nn.Linear):
        return Bilinear()
    if type(module) in _CONV and module.padding_mode == "zeros":
        if isinstance(module.padding, str):  # "same" / "valid": not the tuple the adjoints need
            return None
        return Convolution(module, tensors[f"{name}.weight"])
    return None


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
    evaluation mode, the identity) may come between
    it and the next bilinear layer; the stack ends with a bilinear layer. Nested
    ``nn.Sequential`` blocks (``features``, ``classifier``) are read as one stack.

    Raises
    ------
    NotImplementedError
        For any other module (residual blocks, normalisation, a final activation, …).

    """
    stages: list[Stage] = []
    maps: list[FixedMap] = []
    for name, child in _leaves(module) if isinstance(module, nn.Sequential) else []:
        fixed = _fixed_map(child)
        if fixed is not None:
            maps.append(fixed)
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
