"""JAX adapter specifics: Equinox modules and pytree parameter order."""

from __future__ import annotations

import numpy as np
import pytest

import specinterp as si
from specinterp import operators

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402


def test_equinox_module_against_jax_jacobians():
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(4, 3, 6, 2, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    mlp = jax.tree_util.tree_map(
        lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, mlp
    )
    m = si.as_model(mlp)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((5, 4)))
    jac = operators.input_jacobian(m, x)
    expected = jax.vmap(jax.jacfwd(mlp))(x)
    np.testing.assert_allclose(np.asarray(jac), np.asarray(expected), rtol=1e-12, atol=1e-14)
    params, _ = eqx.partition(mlp, eqx.is_inexact_array)
    assert m.num_params == sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))


def test_parameter_order_is_tree_flatten_order():
    params = {"b": jnp.ones(2), "a": jnp.zeros((3, 2))}
    m = si.as_model(lambda p, x: x @ p["a"].T + p["b"][:1], params)
    flat = np.asarray(m.flat_params)
    leaves = jax.tree_util.tree_leaves(params)
    np.testing.assert_array_equal(flat, np.concatenate([np.ravel(leaf) for leaf in leaves]))


def test_dense_hessian_by_one_jax_hessian_program_equals_the_hvp_columns():
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(5, 3, 7, 2, activation=jnp.tanh, key=jax.random.PRNGKey(2), dtype=jnp.float64)
    m = si.as_model(mlp)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((6, 5)))
    y = jnp.asarray(rng.integers(0, 3, 6))
    assert isinstance(m, si.capabilities.NativeHessian)
    h = operators.hessian(m, x, y, "cross_entropy")
    by_columns = operators.hessian(m, x, y, "cross_entropy", native=False)
    np.testing.assert_allclose(np.asarray(h), np.asarray(by_columns), rtol=1e-10, atol=1e-12)
    # and the bad-target check still runs before the compiled program
    with pytest.raises(si.errors.ShapeError):
        operators.hessian(m, x, y[:4], "cross_entropy")
