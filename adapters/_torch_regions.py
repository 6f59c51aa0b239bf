"""Activation-region boundaries of piecewise-linear torch networks (:ref:`theory-t4`).

A network built from affine layers (``Linear``, ``Conv1d/2d``, eval-mode ``BatchNorm``,
``AvgPool``, ``Flatten``, ``Dropout`` in eval mode) and piecewise-linear ones (``ReLU``,
``LeakyReLU``, ``MaxPool1d/2d``) is affine on each activation region. The region of ``x`` is
cut out by functions ``a_j`` that are affine on it and vanish on its boundary:

* the input ``z_j`` of every ReLU / leaky-ReLU unit (the unit switches where ``z_j = 0``);
* ``u_m − u_e`` for every max-pooling window with maximum ``u_m`` and every other entry
  ``u_e`` of the window (the maximum changes hands where they meet).

This module walks an ``nn.Sequential`` (nested ones are flattened) forward, carrying the
values and their input Jacobians (one forward-mode tangent per input coordinate, batched with
``vmap``), and yields ``(a, ∂a/∂x)`` for every such layer. The core turns them into the radius
``min_j |a_j| / ‖∂a_j/∂x‖``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.func import functional_call, jvp, vmap

from specinterp.errors import MemoryBudgetError, ModelError

_AFFINE = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
)
_KINKED = (nn.ReLU, nn.LeakyReLU)
_MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d)


def layers_of(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf layers of a (nested) ``nn.Sequential`` with their qualified names.

    Raises
    ------
    ModelError
        For a module that is not a ``Sequential`` of the layers T4 covers.

    """
    if not isinstance(module, nn.Sequential):
        if isinstance(module, _AFFINE + _KINKED + _MAXPOOL):
            return [("", module)]
        raise ModelError(
            f"certified_radius walks an nn.Sequential of Linear / Conv / ReLU / LeakyReLU / "
            f"MaxPool / AvgPool / Flatten layers; got {type(module).__name__}. For another "
            "architecture, write it as such a Sequential, or convert it to arraynet"
        )
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            out.extend((f"{name}.{sub}", leaf) for sub, leaf in layers_of(child))
        elif isinstance(child, _AFFINE + _KINKED + _MAXPOOL):
            out.append((name, child))
        else:
            raise ModelError(
                f"certified_radius (T4) needs piecewise-linear layers; layer {name!r} is a "
                f"{type(child).__name__}, whose Jacobian changes everywhere (or is not "
                "supported) — T4 holds for ReLU / LeakyReLU / MaxPool networks"
            )
    # a monotone activation commutes with max: φ(max u) = max φ(u). Pooling first gives the
    # same function with fewer bounding hyperplanes (the kinks of units that lose their window
    # to a larger entry cannot change the Jacobian), so T4's ball is larger and still exact
    for i in range(len(out) - 1):
        if isinstance(out[i][1], _KINKED) and isinstance(out[i + 1][1], _MAXPOOL):
            out[i], out[i + 1] = out[i + 1], out[i]
    for name, layer in out:
        if isinstance(layer, _MAXPOOL) and (
            _pair(layer.padding) != (0, 0) or _pair(layer.dilation) != (1, 1) or layer.ceil_mode
        ):
            raise ModelError(
                f"max-pooling layer {name!r}: only padding=0, dilation=1, ceil_mode=False are "
                "supported by certified_radius"
            )
    return out


def _pair(v: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


def region_boundaries(
    module: nn.Module,
    tensors: dict[str, torch.Tensor],
    x: torch.Tensor,
    max_bytes: int,
) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per chunk of samples, the list of ``(a (n, M), ∂a/∂x (n, M, d))`` of every kinked layer.

    ``tensors`` maps qualified names to the parameters and buffers to use. Chunks are sized so
    that the carried Jacobian of the widest layer stays within ``max_bytes``.
    """
    layers = layers_of(module)
    d = math.prod(x.shape[1:])
    with torch.no_grad():
        widths = [math.prod(x.shape[1:])]
        h = x[:1]
        for name, layer in layers:
            h = _call(layer, name, tensors, h)
            widths.append(math.prod(h.shape[1:]))
    per_sample = 3 * max(widths) * d * x.element_size()
    if per_sample > max_bytes:
        raise MemoryBudgetError(
            f"certified_radius carries a {max(widths)} × {d} input Jacobian per sample "
            f"({per_sample / 2**30:.2f} GiB with temporaries) over the budget of "
            f"{max_bytes / 2**30:.2f} GiB; pass max_bytes= to raise it"
        )
    chunk = max(1, max_bytes // per_sample)
    for start in range(0, int(x.shape[0]), chunk):
        yield list(_walk(layers, tensors, x[start : start + chunk]))


def _call(layer: nn.Module, name: str, tensors: dict[str, torch.Tensor], h: torch.Tensor):
    prefix = f"{name}." if name else ""
    local = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = {k: v for k, v in local.items() if "." not in k}
    if getattr(layer, "inplace", False):  # ReLU(inplace=True) would overwrite the values walked
        h = h.clone()
    return functional_call(layer, own, (h,))


def _walk(
    layers: list[tuple[str, nn.Module]], tensors: dict[str, torch.Tensor], x: torch.Tensor
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    n, d = int(x.shape[0]), math.prod(x.shape[1:])
    h = x
    # tangents: one per input coordinate, (d, n, *shape)
    t = torch.eye(d, dtype=x.dtype, device=x.device).reshape(d, 1, *x.shape[1:])
    t = t.expand(d, n, *x.shape[1:])
    for i, (name, layer) in enumerate(layers):
        if isinstance(layer, _KINKED):
            yield h.reshape(n, -1), t.reshape(d, n, -1).permute(1, 2, 0)
        elif isinstance(layer, _MAXPOOL):
            then_relu = i + 1 < len(layers) and type(layers[i + 1][1]) is nn.ReLU
            yield _pool_boundaries(layer, h, t, then_relu)

        h, t = _layer_jvp(layer, name, tensors, h, t)


def _layer_jvp(
    layer: nn.Module,
    name: str,
    tensors: dict[str, torch.Tensor],
    h: torch.Tensor,
    t: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output at ``h`` and its derivative applied to every tangent in ``t``."""

    def f(v: torch.Tensor) -> torch.Tensor:
        return _call(layer, name, tensors, v)

    return f(h), vmap(lambda tan: jvp(f, (h,), (tan,))[1])(t)


def _pool_boundaries(
    layer: nn.Module, u: torch.Tensor, t: torch.Tensor, then_relu: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``u_m − u_e`` and its gradient for every window entry ``e`` besides the maximum ``m``.

    With a ReLU after the pooling, a window whose maximum is negative is dead — its output and
    Jacobian stay zero while every entry stays negative — so its boundaries are the entries
    ``u_e`` themselves (where one becomes positive), not the differences among them.
    """
    d, n = int(t.shape[0]), int(u.shape[0])
    two_d = isinstance(layer, nn.MaxPool2d)
    k = _pair(layer.kernel_size) if two_d else (layer.kernel_size,)
    s = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
    s = s if two_d else (s[0],)
    if not two_d:  # treat (N, C, L) as (N, C, 1, L)
        u, t = u[..., None, :], t[..., None, :]
        k, s = (1, *k), (1, *s)
    c = int(u.shape[1])
    win = torch.nn.functional.unfold(u, k, stride=s)  # (n, C·K, L)
    win = win.reshape(n, c, math.prod(k), -1)  # (n, C, K, L)
    tw = torch.nn.functional.unfold(t.reshape(d * n, *t.shape[2:]), k, stride=s)
    tw = tw.reshape(d, n, c, math.prod(k), -1)
    m = win.argmax(dim=2, keepdim=True)  # the maximum of each window
    a = win.gather(2, m) - win  # ≥ 0, zero at the maximum itself
    g = tw.gather(3, m[None].expand(d, -1, -1, -1, -1)) - tw
    keep = torch.ones_like(a, dtype=torch.bool).scatter(2, m, False)
    a = torch.where(keep, a, torch.full_like(a, math.inf))  # the maximum bounds nothing
    if then_relu:
        dead = win.gather(2, m) <= 0  # (n, C, 1, L)
        a = torch.where(dead, win, a)
        g = torch.where(dead[None], tw, g)
    return a.reshape(n, -1), g.reshape(d, n, -1).permute(1, 2, 0)
