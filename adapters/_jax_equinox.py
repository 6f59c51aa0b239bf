"""Equinox modules as JAX models: their inexact arrays are the parameters.

:meth:`~specinterp.adapters.jax.JaxModel.from_equinox` builds on :func:`equinox_parts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from specinterp.errors import ModelError

__all__ = ["equinox_parts"]


def equinox_parts(
    module: Any, batched: bool, embedding: str | None
) -> tuple[Callable[[Any, jax.Array], jax.Array], Any, Any, Callable[..., Any] | None]:
    """``(apply, params, embedder, factors)`` of an Equinox module.

    ``apply(p, x)`` recombines the parameters with the static part and runs the module,
    ``vmap``-ed over the batch unless ``batched``. At token ids the per-sample module's
    ``eqx.nn.Embedding`` (found, or named by its dotted path ``embedding``) gives the embedded
    view. ``factors(unravel)`` is the product form's builder for an ``eqx.nn.MLP``
    (``None`` otherwise): ``(theta, x) ↦`` its layer factors.
    """
    import equinox as eqx

    from ._flax_embedding import EqxEmbedder

    training = _training_layers(module)
    if training:
        raise ModelError(
            f"the module is in training mode ({', '.join(training)}), so its output is random or "
            "batch-coupled; wrap it as si.as_model(eqx.nn.inference_mode(module))"
        )
    params, static = eqx.partition(module, eqx.is_inexact_array)

    def apply(p: Any, x: jax.Array) -> jax.Array:
        m = eqx.combine(p, static)
        return m(x) if batched else jax.vmap(m)(x)

    factors = None
    if isinstance(module, eqx.nn.MLP) and not batched:
        from ._jax_mlp import mlp_factors

        def factors(unravel: Callable[[Any], Any]) -> Callable[[Any, jax.Array], Any]:
            return lambda theta, xx: mlp_factors(eqx.combine(unravel(theta), static), xx)

    embedder = None if batched else EqxEmbedder(static, embedding)
    return apply, params, embedder, factors


def _training_layers(module: Any) -> list[str]:
    """The ``eqx.nn.Dropout`` / ``eqx.nn.BatchNorm`` layers of ``module`` not in inference mode."""
    import equinox as eqx

    kinds = (eqx.nn.Dropout, eqx.nn.BatchNorm)
    leaves = jax.tree_util.tree_flatten_with_path(module, is_leaf=lambda m: isinstance(m, kinds))[0]
    found = []
    for path, layer in leaves:
        if not isinstance(layer, kinds) or layer.inference:
            continue
        if isinstance(layer, eqx.nn.Dropout) and layer.p == 0:
            continue
        found.append(f"{type(layer).__name__} {jax.tree_util.keystr(path) or 'the module'}")
    return found
