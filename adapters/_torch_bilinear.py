"""The bilinear layers of a layer stack: ``z = A(W, h) + b``, with ``A``'s two adjoints.

``A`` is linear in the weight ``W`` for a fixed input ``h`` and linear in ``h`` for a fixed
``W``: ``nn.Linear`` (``A = h Wᵀ``), ``nn.Conv1d/2d/3d`` with zero padding (a correlation) and
a batch normalisation's per-channel scale (``A = γ_c h_c``). Each :class:`Bilinear` supplies
``A``, the input adjoint ``A_h^*(g)`` (``g W`` for a dense layer, the transposed convolution
for a convolution) and the weight adjoint ``A_W^*(g)`` (``gᵀ h``, the correlation of ``g`` with
the inputs) — all the layer-wise Hessian and GGN products need (:ref:`theory-mlp-hvp`).

Two-dimensional convolutions run in the channels-last layout, where oneDNN's kernels on a CPU
are 3–7× faster than on NCHW tensors (the gradient-input pass of a 16-channel 3×3 convolution:
1.1 ms against 5.8 ms at batch 256); the results are laid out as the module's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["CONV", "Bilinear", "ChannelScale", "Convolution", "Unweighted", "per_channel"]

Tensor = torch.Tensor
#: the convolution modules and their functional forms
CONV = {nn.Conv1d: torch.nn.functional.conv1d, nn.Conv2d: torch.nn.functional.conv2d,
         nn.Conv3d: torch.nn.functional.conv3d}  # fmt: skip


def per_channel(t: Tensor, ndim: int) -> Tensor:
    """A per-channel ``(C,)`` vector shaped to broadcast over ``ndim`` axes after the channels."""
    return t.view(-1, *([1] * ndim))


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
        self.fn = CONV[type(conv)]
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
        return per_channel(b, self.nd)

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


class ChannelScale(Bilinear):
    """``A(γ, h) = γ_c h_c``, channel by channel: a batch normalisation's affine part."""

    input_ndim = 0  # any batched input with channels on axis 1
    ndim = 0  # its axes after the channels', set by the forward pass (the first ``apply``)

    def apply(self, h: Tensor, w: Tensor, out: Tensor | None = None) -> Tensor:
        self.ndim = h.ndim - 2
        scale = per_channel(w, self.ndim)
        return h * scale if out is None else out.addcmul_(h, scale)

    def bias(self, b: Tensor) -> Tensor:
        return per_channel(b, self.ndim)

    def input_adjoint(self, g: Tensor, w: Tensor, h: Tensor, out: Tensor | None = None) -> Tensor:
        return self.apply(g, w, out)

    def weight_adjoint(self, g: Tensor, h: Tensor, out: Tensor | None = None) -> Tensor:
        gw = self.bias_adjoint(g * h)
        return gw if out is None else out.add_(gw)

    def bias_adjoint(self, g: Tensor) -> Tensor:
        return g.sum([0, *range(2, g.ndim)]) if g.ndim > 2 else g.sum(0)


class Unweighted(Bilinear):
    """The identity, as a stage without parameters.

    A batch normalisation without ``γ, β`` is its normalising map and this stage, so that an
    activation can follow it.
    """

    input_ndim = 0

    def apply(self, h: Tensor, w: Any, out: Tensor | None = None) -> Tensor:
        return h.clone() if out is None else out.add_(h)

    def input_adjoint(self, g: Tensor, w: Any, h: Tensor, out: Tensor | None = None) -> Tensor:
        return self.apply(g, w, out)
