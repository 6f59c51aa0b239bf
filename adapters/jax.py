"""JAX adapter: ``apply_fn(params, x_batch)`` with a parameter pytree (plain JAX or Flax linen).

Products are ``jax.jvp`` / ``jax.vjp`` on the raveled parameter vector
(``jax.flatten_util.ravel_pytree``: tree-flatten order), the HVP is forward-over-reverse, and
the dense Jacobians use ``vmap(jacrev)``. Every product is ``jit``-compiled once per model.
Float64 needs ``jax.config.update("jax_enable_x64", True)`` — the caller's choice; the library
never flips it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from specinterp import _xp
from specinterp.errors import ModelError
from specinterp.losses import check_loss, loss_value
from specinterp.model import ModelBase

__all__ = ["JaxModel", "jacobian_entropy", "jacobian_frobenius", "jacobian_spectral_norm"]


class JaxModel(ModelBase):
    """A JAX function of ``(params, x)`` behind the :class:`~specinterp.model.Model` protocol.

    Parameters
    ----------
    fn : callable or flax.linen.Module
        ``fn(params, x)`` returning ``(N, C)``; for a Flax module its ``apply`` is used.
    params : pytree
        The parameters (for Flax, the ``variables`` dict passed to ``apply``).
    input_shape : tuple of int, optional
        Per-sample input shape, checked on every call when given.

    """

    def __init__(
        self,
        fn: Callable[..., Any] | Any,
        params: Any = None,
        *,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.input_shape = None if input_shape is None else tuple(input_shape)
        if params is None:
            raise ModelError("a JAX model needs params= (the parameter pytree)")
        if not callable(fn) and not hasattr(fn, "apply"):
            raise ModelError("pass apply_fn(params, x) or a Flax linen module")
        apply = fn.apply if type(fn).__module__.startswith("flax") else fn
        flat, unravel = ravel_pytree(params)
        self.params = params
        self.xp = jnp
        self.flat = flat
        self.dtype = flat.dtype
        self.device = _xp.device(flat)
        self.num_params = int(flat.shape[0])

        def f(theta: jax.Array, x: jax.Array) -> jax.Array:
            out = apply(unravel(theta), x)
            if out.ndim != 2:
                raise ModelError(f"the model must return (N, C) outputs; got {out.shape}")
            return out

        self._f = f
        self._apply = jax.jit(f)
        self._jvp_in = jax.jit(lambda t, x, v: jax.jvp(lambda xx: f(t, xx), (x,), (v,))[1])
        self._vjp_in = jax.jit(lambda t, x, u: jax.vjp(lambda xx: f(t, xx), x)[1](u)[0])
        self._jvp_p = jax.jit(lambda t, x, v: jax.jvp(lambda tt: f(tt, x), (t,), (v,))[1])
        self._vjp_p = jax.jit(lambda t, x, u: jax.vjp(lambda tt: f(tt, x), t)[1](u)[0])
        self._hvps: dict[str, Callable[..., jax.Array]] = {}

        def single(t: jax.Array, xi: jax.Array) -> jax.Array:
            return f(t, xi[None])[0]

        self._jac_in = jax.jit(jax.vmap(jax.jacrev(single, argnums=1), in_axes=(None, 0)))
        self._jac_p = jax.jit(jax.vmap(jax.jacrev(single, argnums=0), in_axes=(None, 0)))

    @classmethod
    def from_equinox(
        cls, module: Any, *, batched: bool = False, input_shape: tuple[int, ...] | None = None
    ) -> JaxModel:
        """Wrap an Equinox module: its inexact arrays are the parameters.

        Equinox modules usually map one sample; they are ``vmap``-ed over the batch unless
        ``batched=True``.
        """
        import equinox as eqx

        params, static = eqx.partition(module, eqx.is_inexact_array)

        def apply(p: Any, x: jax.Array) -> jax.Array:
            m = eqx.combine(p, static)
            return m(x) if batched else jax.vmap(m)(x)

        return cls(apply, params, input_shape=input_shape)

    def weight_matrices(self) -> list[tuple[str, jax.Array]]:
        """The 2-d leaves of the parameter pytree, named by their key path."""
        leaves = jax.tree_util.tree_flatten_with_path(self.params)[0]
        return [
            (jax.tree_util.keystr(path), leaf)
            for path, leaf in leaves
            if getattr(leaf, "ndim", 0) == 2
        ]

    def with_params(self, theta: jax.Array) -> JaxModel:
        """The same model with the flat parameter vector ``theta``."""
        self.check_flat_params(theta)
        other = copy.copy(self)
        other.flat = theta
        return other

    @property
    def flat_params(self) -> jax.Array:
        """The current parameters as one flat vector."""
        return self.flat

    def apply(self, x: jax.Array) -> jax.Array:
        """Outputs ``(N, C)``."""
        self.check_input(x)
        return self._apply(self.flat, x)

    def jvp_input(self, x: jax.Array, v: jax.Array) -> jax.Array:
        """``J_i v_i``."""
        self.check_input(x)
        return self._jvp_in(self.flat, x, v)

    def vjp_input(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """``J_iᵀ u_i``."""
        self.check_input(x)
        return self._vjp_in(self.flat, x, u)

    def jvp_params(self, x: jax.Array, v: jax.Array) -> jax.Array:
        """``G_i v``."""
        self.check_input(x)
        self.check_flat_params(v)
        return self._jvp_p(self.flat, x, v)

    def vjp_params(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """``Σ_i G_iᵀ u_i``."""
        self.check_input(x)
        return self._vjp_p(self.flat, x, u)

    def hvp(self, x: jax.Array, y: jax.Array, v: jax.Array, loss: str) -> jax.Array:
        """``H v`` by forward-over-reverse (``jvp`` of ``grad``)."""
        self.check_input(x)
        self.check_flat_params(v)
        check_loss(loss)
        if loss not in self._hvps:
            f = self._f

            def hvp(t: jax.Array, x: jax.Array, y: jax.Array, v: jax.Array) -> jax.Array:
                g = jax.grad(lambda tt: loss_value(f(tt, x), y, loss))
                return jax.jvp(g, (t,), (v,))[1]

            self._hvps[loss] = jax.jit(hvp)
        return self._hvps[loss](self.flat, x, y, v)

    def hvp_operator(
        self, x: jax.Array, y: jax.Array, loss: str
    ) -> Callable[[jax.Array], jax.Array]:
        """``v ↦ H v`` at a fixed batch, reusing one linearisation.

        ``jax.linearize`` of the gradient is computed once and jit-compiled, so each product
        reuses the stored linearisation.
        """
        self.check_input(x)
        check_loss(loss)
        f = self._f
        _, lin = jax.linearize(jax.grad(lambda t: loss_value(f(t, x), y, loss)), self.flat)
        return jax.jit(lin)

    def input_jacobian(self, x: jax.Array) -> jax.Array:
        """``(N, C, d)`` by ``vmap(jacrev)``."""
        self.check_input(x)
        jac = self._jac_in(self.flat, x)
        return jnp.reshape(jac, (x.shape[0], jac.shape[1], -1))

    def param_jacobian(self, x: jax.Array) -> jax.Array:
        """``(N, C, p)`` by ``vmap(jacrev)``."""
        self.check_input(x)
        return self._jac_p(self.flat, x)


# ---------------------------------------------------------------------- regularisers
def jacobian_frobenius(
    fn: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array, num_projections: int = 1
) -> jax.Array:
    """SPEC §5 (a) in JAX: ``mean_i E_v ‖J_i v‖²`` with unit random ``v`` (``= ‖J_i‖_F²/d``)."""
    total = jnp.zeros((), dtype=x.dtype)
    for k in jax.random.split(key, num_projections):
        v = jax.random.normal(k, x.shape, dtype=x.dtype)
        flat = v.reshape(v.shape[0], -1)
        v = (flat / jnp.linalg.norm(flat, axis=1, keepdims=True)).reshape(x.shape)
        total = total + jnp.sum(jax.jvp(fn, (x,), (v,))[1] ** 2) / x.shape[0]
    return total / num_projections


def jacobian_spectral_norm(
    fn: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array, num_iters: int = 5
) -> jax.Array:
    """SPEC §5 (b) in JAX: ``mean_i σ_1(J_i)²`` by power iteration (iterate held fixed)."""
    v = jax.random.normal(key, x.shape, dtype=x.dtype)
    for _ in range(num_iters):
        jv = jax.jvp(fn, (x,), (v,))[1]
        v = jax.vjp(fn, x)[1](jv)[0]
        flat = v.reshape(v.shape[0], -1)
        v = (flat / jnp.maximum(jnp.linalg.norm(flat, axis=1, keepdims=True), 1e-30)).reshape(
            x.shape
        )
    v = jax.lax.stop_gradient(v)
    return jnp.sum(jax.jvp(fn, (x,), (v,))[1] ** 2) / x.shape[0]


def jacobian_entropy(fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """SPEC §5 (c) in JAX: ``mean_i H(J_i)`` from the full per-sample Jacobians."""
    from specinterp.spectra import spectral_entropy

    jac = jax.vmap(jax.jacrev(lambda xi: fn(xi[None])[0]))(x)
    return jnp.mean(spectral_entropy(jac.reshape(x.shape[0], jac.shape[1], -1)))
