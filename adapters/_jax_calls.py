"""The user's JAX function as the adapter calls it.

A Flax linen module's ``apply``, or a plain ``apply_fn(params, x)``, with its shape and type
errors turned into a specific ``ModelError``. A linen module's variables are split into its
``"params"`` collection, which is differentiated, and the others (``"batch_stats"``, constants),
which are held fixed (:class:`LinenApply`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from specinterp.errors import ModelError

__all__ = ["LinenApply", "is_linen", "with_context"]


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


class LinenApply:
    """A linen module applied to its ``"params"`` collection, the other collections held fixed.

    ``variables`` is what ``module.init`` returned; every quantity of the model is taken with
    respect to ``variables["params"]`` alone — running statistics (``"batch_stats"``) and other
    collections are state, not parameters. Given the ``"params"`` collection itself (a mapping
    without that key), it is used as such.
    """

    def __init__(self, module: Any, variables: Any) -> None:
        from collections.abc import Mapping

        if not isinstance(variables, Mapping):
            raise ModelError(
                "a Flax linen module takes the variables dict that module.init returned "
                f"(with a 'params' collection); got a {type(variables).__name__}"
            )
        self.module = module
        if "params" in variables:
            self.params = variables["params"]
            self.fixed = {k: v for k, v in variables.items() if k != "params"}
        else:
            self.params, self.fixed = variables, {}

    def apply(self, params: Any, x: jax.Array) -> Any:
        """``module.apply`` on ``params`` and the fixed collections."""
        try:
            return self.module.apply({**self.fixed, "params": params}, x)
        except Exception as exc:  # Flax reports a mutation of a fixed collection by its class
            if type(exc).__name__ != "ModifyScopeVariableError":
                raise
            first = str(exc).splitlines()[0]
            raise ModelError(
                f"the module updates a variable collection when applied ({first}); "
                "build it in inference mode — BatchNorm(use_running_average=True), "
                "Dropout(deterministic=True) — so that its outputs are a function of its inputs"
            ) from exc
