"""Flax NNX modules (the current Flax API) behind the Model protocol.

An NNX module is split into its graph definition, its ``nnx.Param`` state (the parameters
that are differentiated, in ``nnx.State`` tree order) and the rest (batch statistics, RNG
state), and analysed through :class:`~specinterp.adapters.jax.JaxModel` as the pure function
``(params, x) ↦ nnx.merge(graphdef, params, rest)(x)``. NNX layers map whole batches, so the
module is called on ``(N, *input_shape)`` directly. Put dropout / batch-norm layers in
evaluation mode first (``module.eval()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from ._flax_embedding import NnxEmbedder
from .jax import JaxModel

__all__ = ["from_nnx"]


def from_nnx(
    module: Any,
    *,
    input_shape: tuple[int, ...] | None = None,
    output: str | int | Callable[[Any], Any] | None = None,
    embedding: str | None = None,
) -> JaxModel:
    """Wrap a Flax NNX module; ``embedding=`` names its token ``nnx.Embed`` (dotted path)."""
    from flax import nnx

    graphdef, params, rest = nnx.split(module, nnx.Param, ...)

    def apply(p: Any, x: jax.Array) -> Any:
        return nnx.merge(graphdef, p, rest)(x)

    model = JaxModel(
        apply,
        params,
        input_shape=input_shape,
        output=output,
        embedder=NnxEmbedder(graphdef, rest, embedding),
        kind=f"flax.nnx {type(module).__name__}",
    )
    if isinstance(module, nnx.Sequential):
        from ._jax_mlp import nnx_sequential_factors

        unravel = model._unravel
        model._factors = lambda theta, x: nnx_sequential_factors(
            nnx.merge(graphdef, unravel(theta), rest), x
        )
    return model
