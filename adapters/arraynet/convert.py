"""Converters into arraynet: a ``torch.nn.Sequential`` of supported layers."""

from __future__ import annotations

from typing import Any

from specinterp.errors import ModelError

from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .conv import Conv2d
from .dense import Dense, Flatten
from .layer import Layer
from .network import Sequential

Array = Any

__all__ = ["from_torch"]


def from_torch(module: Any, *, xp: Any = None) -> Sequential:
    """Copy a ``torch.nn.Sequential`` of supported layers into an arraynet ``Sequential``.

    Supported: ``Linear``, ``Conv2d`` (zero padding, dilation 1, groups 1, square stride and
    padding), ``Flatten``, ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``Softplus`` and
    ``GELU(approximate="tanh")``. Weights are copied to the host (NumPy by default, or
    ``xp``).
    """
    import torch

    def arr(t: Any) -> Array:
        a = t.detach().cpu().numpy()
        return a if xp is None else xp.asarray(a)

    if not isinstance(module, torch.nn.Sequential):
        raise ModelError("from_torch copies a torch.nn.Sequential")
    layers: list[Layer] = []
    for m in module:
        if isinstance(m, torch.nn.Linear):
            layers.append(Dense(arr(m.weight), None if m.bias is None else arr(m.bias)))
        elif isinstance(m, torch.nn.Conv2d):
            if (
                m.groups != 1
                or m.dilation != (1, 1)
                or m.padding_mode != "zeros"
                or len({*m.stride}) != 1
                or isinstance(m.padding, str)
                or len({*m.padding}) != 1
            ):
                raise ModelError(f"unsupported Conv2d configuration: {m}")
            layers.append(
                Conv2d(
                    arr(m.weight),
                    None if m.bias is None else arr(m.bias),
                    stride=m.stride[0],
                    padding=m.padding[0],
                )
            )
        elif isinstance(m, torch.nn.Flatten):
            layers.append(Flatten())
        elif isinstance(m, torch.nn.ReLU):
            layers.append(ReLU())
        elif isinstance(m, torch.nn.LeakyReLU):
            layers.append(LeakyReLU(m.negative_slope))
        elif isinstance(m, torch.nn.Tanh):
            layers.append(Tanh())
        elif isinstance(m, torch.nn.Sigmoid):
            layers.append(Sigmoid())
        elif isinstance(m, torch.nn.Softplus):
            layers.append(Softplus(m.beta))
        elif isinstance(m, torch.nn.GELU) and m.approximate == "tanh":
            layers.append(GELU())
        else:
            raise ModelError(f"from_torch does not support {type(m).__name__} ({m})")
    return Sequential(layers)
