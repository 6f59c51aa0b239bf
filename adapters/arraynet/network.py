"""An arraynet network: :class:`Sequential` layers, and :func:`init_mlp` to build one.

Parameters are flattened in layer order, weight before bias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from specinterp import _xp
from specinterp.errors import ModelError

from .activations import Activation, ReLU
from .dense import Dense
from .layer import Layer

Array = Any

__all__ = ["Sequential", "init_mlp"]


@dataclass(frozen=True)
class Sequential:
    """A feed-forward network: layers applied in order to a batch ``(N, ...)``."""

    layers: tuple[Layer, ...]

    def __init__(self, layers: Sequence[Layer]) -> None:
        layers = tuple(layers)
        if not layers or not all(isinstance(lay, Layer) for lay in layers):
            raise ModelError("Sequential needs a non-empty list of arraynet layers")
        object.__setattr__(self, "layers", layers)

    @property
    def params(self) -> list[Array]:
        """All parameter arrays in layer order (weight before bias)."""
        return [p for lay in self.layers for p in lay.params]

    def with_params(self, params: Sequence[Array]) -> Sequential:
        """The same architecture with new parameter arrays (same order as :attr:`params`)."""
        out, i = [], 0
        for lay in self.layers:
            k = len(lay.params)
            out.append(lay.with_params(list(params[i : i + k])))
            i += k
        return Sequential(out)

    def __call__(self, x: Array) -> Array:
        """Outputs of the network on a batch ``x``."""
        for lay in self.layers:
            x, _ = lay.forward(x)
        return x


def init_mlp(
    widths: Sequence[int],
    activation: Activation | None = None,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    bias: bool = True,
) -> Sequential:
    """A randomly initialised MLP ``widths[0] → … → widths[-1]`` (He-normal weights, zero bias).

    Parameters
    ----------
    widths : sequence of int
        Layer widths, input first.
    activation : Activation
        Between Dense layers (default ``ReLU()``).
    seed : int
        Seeds the weights (the same numbers on every backend).
    xp, dtype
        Namespace and dtype of the parameters (default NumPy float64).
    bias : bool
        Whether Dense layers have a bias.

    """
    if xp is None:
        xp = _xp.default_namespace()
    dtype = xp.float64 if dtype is None else dtype
    activation = ReLU() if activation is None else activation
    rng = _xp.Generator(seed, xp)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(pairwise(widths)):
        w = rng.normal((n_out, n_in), dtype=dtype, scale=math.sqrt(2.0 / n_in))
        b = xp.zeros((n_out,), dtype=dtype) if bias else None
        layers.append(Dense(w, b))
        if i < len(widths) - 2:
            layers.append(activation)
    return Sequential(layers)
