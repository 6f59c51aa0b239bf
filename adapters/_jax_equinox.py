"""Equinox modules as JAX models: their inexact arrays are the parameters.

:meth:`~specinterp.adapters.jax.JaxModel.from_equinox` builds on :func:`equinox_parts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

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
