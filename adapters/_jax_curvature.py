"""The JAX adapter's loss-curvature products: HVPs and dense Hessians, compiled once.

:class:`JaxCurvature` is mixed into :class:`~specinterp.adapters.jax.JaxModel` (the twin of
:mod:`._torch_curvature`); it uses the model's ``_natural`` (outputs in their own shape at a
flat ``θ``), ``flat`` parameters, the ``_hvps`` cache of compiled programs, ``check_input`` and
``check_flat_params``. Every product is forward-over-reverse, ``jit``-compiled once per loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from specinterp.losses import get_loss

__all__ = ["JaxCurvature"]


class JaxCurvature:
    """Compiled HVPs and dense Hessians of a JAX model's mean loss."""

    flat: jax.Array
    _hvps: dict[Any, Callable[..., jax.Array]]

    def _hvp_compiled(self, loss: Any) -> Callable[..., jax.Array]:
        """The jit-compiled ``(θ, x, y, v) ↦ H v`` for ``loss`` (forward-over-reverse)."""
        lf = get_loss(loss)
        if lf not in self._hvps:
            f = self._natural

            def hvp(t: jax.Array, x: jax.Array, y: jax.Array, v: jax.Array) -> jax.Array:
                g = jax.grad(lambda tt: lf.value(f(tt, x), y))
                return jax.jvp(g, (t,), (v,))[1]

            self._hvps[lf] = jax.jit(hvp)
        return self._hvps[lf]

    def hvp(self, x: jax.Array, y: jax.Array, v: jax.Array, loss: Any) -> jax.Array:
        """``H v`` by forward-over-reverse (``jvp`` of ``grad``)."""
        self.check_input(x)
        self.check_flat_params(v)
        return self._hvp_compiled(loss)(self.flat, x, y, v)

    def hvp_operator(
        self, x: jax.Array, y: jax.Array, loss: Any
    ) -> Callable[[jax.Array], jax.Array]:
        """``v ↦ H v`` at a fixed batch: the compiled product, checks done once.

        The forward-over-reverse product is compiled once per loss and input shape (an eager
        ``jax.linearize`` of a Flax model took seconds to trace and ran no faster).
        """
        self.check_input(x)
        compiled, theta = self._hvp_compiled(loss), self.flat
        return lambda v: compiled(theta, x, y, v)

    def loss_hessian(self, x: jax.Array, y: jax.Array, loss: Any) -> jax.Array:
        """The dense ``H`` ``(p, p)`` by one compiled ``jax.hessian`` (``NativeHessian``).

        One XLA program for all ``p`` columns (forward-over-reverse, vectorised), in place of
        ``p`` calls of the compiled HVP; symmetrised inside it.
        """
        self.check_input(x)
        lf = get_loss(loss)
        key = ("hessian", lf)
        if key not in self._hvps:
            f = self._natural
            hess = jax.hessian(lambda t, xx, yy: lf.value(f(t, xx), yy))

            def symmetric(t: jax.Array, xx: jax.Array, yy: jax.Array) -> jax.Array:
                h = hess(t, xx, yy)
                return 0.5 * (h + h.T)

            self._hvps[key] = jax.jit(symmetric)
        return self._hvps[key](self.flat, x, y)
