"""Spectral regularisers for training JAX models (:ref:`theory-regularisers`).

The JAX side of :mod:`specinterp.regularizers` (which takes ``rng=`` and dispatches here); each
takes a JAX function of the batch ``fn(x) -> (N, C)`` (close over the parameters to
differentiate in them) and returns a differentiable scalar. Randomness is an explicit key.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["jacobian_entropy", "jacobian_frobenius", "jacobian_spectral_norm"]


def jacobian_frobenius(
    fn: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array, num_projections: int = 1
) -> jax.Array:
    """(a) ``mean_i E_v ‖J_i v‖²``, unit random ``v`` (``= ‖J_i‖_F²/d``).

    Theory: :ref:`theory-regularisers`.

    Parameters
    ----------
    fn : callable
        ``x ↦ outputs (N, C)``, a JAX function of the batch (close over the parameters).
    x : jax.Array
        The batch ``(N, *input_shape)``.
    key : JAX key
        Source of the directions (split it between training steps).
    num_projections : int
        Directions averaged.

    Returns
    -------
    jax.Array
        A differentiable scalar. :func:`specinterp.regularizers.jacobian_frobenius` is the
        same with one signature for every framework.

    """
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
    """(b) ``mean_i σ_1(J_i)²`` by ``num_iters`` power-iteration steps (iterate held fixed).

    ``fn``, ``x`` and ``key`` as in :func:`jacobian_frobenius`; returns a differentiable scalar
    (:ref:`theory-regularisers`).
    """
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
    """(c) ``mean_i H(J_i)`` from the full per-sample Jacobians (:ref:`theory-regularisers`).

    ``fn`` and ``x`` as in :func:`jacobian_frobenius`; differentiable through the singular
    values.
    """
    from specinterp.spectra import spectral_entropy

    jac = jax.vmap(jax.jacrev(lambda xi: fn(xi[None])[0]))(x)
    return jnp.mean(spectral_entropy(jac.reshape(x.shape[0], jac.shape[1], -1)))
