"""The user's JAX function as the adapter calls it.

A Flax linen module's ``apply``, or a plain ``apply_fn(params, x)``, with its shape and type
errors turned into a specific ``ModelError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from specinterp.errors import ModelError

__all__ = ["is_linen", "with_context"]


def with_context(apply: Callable[..., Any]) -> Callable[..., Any]:
    """``apply`` whose shape and type errors name the inputs and what to check.

    JAX reports a wrong layout from deep inside the traced layers (``conv_general_dilated``
    …); the first line of its message is kept and the inputs' per-sample shape added.
    """

    def run(p: Any, x: jax.Array) -> Any:
        try:
            return apply(p, x)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ModelError):
                raise
            kind = (
                "token ids"
                if not jnp.issubdtype(x.dtype, jnp.floating)
                else f"per-sample shape {tuple(x.shape[1:])}"
            )
            raise ModelError(
                f"the model failed on inputs of {kind}: {str(exc).splitlines()[0]} — check that "
                "x has the shape, layout (Flax convolutions take NHWC) and dtype the model "
                "expects (input_shape= checks the shape before any call)"
            ) from exc

    return run


def is_linen(fn: Any) -> bool:
    """Whether ``fn`` is a Flax linen module (its ``apply`` is the function of parameters)."""
    return any(getattr(c, "__module__", "").startswith("flax.linen") for c in type(fn).__mro__)
