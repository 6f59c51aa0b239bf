"""A user's JAX model for ``specinterp report --model examples/report_jax_model.py:make``.

Returns ``(apply_fn, params)``; inputs are 64 features (8×8 digits).
"""

import jax
import jax.numpy as jnp


def make():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "w1": jax.random.normal(k1, (64, 32)) / 8.0,
        "b1": jnp.zeros(32),
        "w2": jax.random.normal(k2, (32, 10)) / 6.0,
        "b2": jnp.zeros(10),
    }

    def apply_fn(p, x):
        return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    return apply_fn, params
