"""A user's per-sample loss in the model's framework, differentiated by that framework."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ShapeError
from .base import Loss, _check_namespace

Array = Any

__all__ = ["CallableLoss"]


@dataclass(frozen=True, eq=False)
class CallableLoss(Loss):
    """A user loss ``fn(outputs, targets) -> (N,)`` in the model's framework (torch or JAX).

    Its gradient and ``Λ`` products come from that framework's automatic differentiation
    (``Λ dz`` reverse over reverse in torch, forward over reverse in JAX); ``Λ`` is never formed.
    """

    fn: Callable[[Array, Array], Array]
    name = "callable"

    def check(self, z: Array, y: Array) -> None:
        """Targets from the outputs' library; the callable returns ``(N,)``."""
        _check_namespace(z, y)
        out = self.fn(z, y)
        if not hasattr(out, "shape") or tuple(out.shape) != (int(z.shape[0]),):
            got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
            raise ShapeError(
                f"a loss callable must return per-sample losses of shape ({int(z.shape[0])},) "
                f"for outputs of shape {tuple(z.shape)}; got {got} — return the losses "
                "unreduced (e.g. reduction='none', summed over every axis but the first)"
            )

    def per_sample(self, z: Array, y: Array) -> Array:
        """``fn(z, y)``."""
        self.check(z, y)
        return self.fn(z, y)

    def gradient(self, z: Array, y: Array) -> Array:
        """``∂ℓ_i/∂z_i`` by the framework's reverse mode."""
        from specinterp.adapters._autodiff import output_gradient

        self.check(z, y)
        return output_gradient(self.fn, z, y)

    def apply_hessian(self, z: Array, y: Array, dz: Array) -> Array:
        """``Λ_i dz_i`` by the framework's second-order autodiff."""
        from specinterp.adapters._autodiff import output_hvp

        return output_hvp(self.fn, z, y, dz)

    def __repr__(self) -> str:
        return f"CallableLoss({getattr(self.fn, '__qualname__', self.fn)!r})"
