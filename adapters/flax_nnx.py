"""Flax NNX modules (the current Flax API) behind the Model protocol.

An NNX module is split into its graph definition, its ``nnx.Param`` state (the parameters
that are differentiated, in ``nnx.State`` tree order) and the rest (batch statistics, RNG
state), and analysed through :class:`~specinterp.adapters.jax.JaxModel` as the pure function
``(params, x) ↦ nnx.merge(graphdef, params, rest)(x)``. NNX layers map whole batches, so the
module is called on ``(N, *input_shape)`` directly. A module whose dropout or batch-norm
layers are in training mode is refused: call ``module.eval()`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from specinterp.errors import ModelError

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

    training = _training_layers(module)
    if training:
        raise ModelError(
            f"the module is in training mode ({', '.join(training)}), so its output is random or "
            "batch-coupled and its batch statistics would be updated inside JAX transforms; "
            "call module.eval() first"
        )
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


def _training_layers(module: Any) -> list[str]:
    """The dropout and batch-norm layers of ``module`` that are in training mode, by path."""
    from flax import nnx

    found = []
    for path, layer in nnx.iter_graph(module):
        name = ".".join(str(p) for p in path) or "the module"
        if isinstance(layer, nnx.Dropout) and layer.rate > 0 and not layer.deterministic:
            found.append(f"Dropout {name}")
        elif isinstance(layer, nnx.BatchNorm) and not layer.use_running_average:
            found.append(f"BatchNorm {name}")
    return found
