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


def _linen_bn_cnn():
    """A linen CNN with BatchNorm in inference mode and non-trivial running statistics."""
    nn = pytest.importorskip("flax.linen")

    class Net(nn.Module):
        train: bool = False

        @nn.compact
        def __call__(self, x):
            x = nn.Conv(3, (3, 3), param_dtype=jnp.float64)(x)
            x = nn.BatchNorm(use_running_average=not self.train, param_dtype=jnp.float64)(x)
            x = jnp.tanh(x).reshape(x.shape[0], -1)
            return nn.Dense(4, param_dtype=jnp.float64)(x)

    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((5, 4, 4, 2)))
    variables = Net().init(jax.random.PRNGKey(0), x)
    stats = {
        "BatchNorm_0": {
            "mean": jnp.asarray(rng.standard_normal(3)),
            "var": jnp.asarray(rng.uniform(0.5, 2, 3)),
        }
    }
    return Net, {"params": variables["params"], "batch_stats": stats}, x, rng.integers(0, 4, 5)


def test_linen_module_differentiates_its_params_collection_alone():
    """Running statistics are state: the Hessian and the parameter Jacobian are taken over the
    ``params`` collection (checked against ``jax.hessian`` / ``jax.jacrev`` with the statistics
    held fixed), and the ``params`` collection alone is accepted for a module without state."""
    from jax.flatten_util import ravel_pytree

    net, variables, x, y = _linen_bn_cnn()
    m = si.as_model(net(), variables)
    flat, unravel = ravel_pytree(variables["params"])
    assert m.num_params == flat.size
    np.testing.assert_array_equal(np.asarray(m.flat_params), np.asarray(flat))

    def logits(t):
        return net().apply({"params": unravel(t), "batch_stats": variables["batch_stats"]}, x)

    def loss(t):
        z = logits(t)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), jnp.asarray(y)[:, None], 1))

    h = operators.hessian(m, x, jnp.asarray(y), "cross_entropy")
    np.testing.assert_allclose(np.asarray(h), np.asarray(jax.hessian(loss)(flat)), atol=1e-10)
    g = operators.param_jacobian(m, x)
    want = jax.jacrev(logits)(flat)  # (N, C, p)
    np.testing.assert_allclose(np.asarray(g), np.asarray(want), rtol=1e-10, atol=1e-12)

    # without state, the params collection on its own is the same model
    nn = pytest.importorskip("flax.linen")
    dense = nn.Dense(3, param_dtype=jnp.float64)
    xd = jnp.asarray(np.random.default_rng(5).standard_normal((4, 2)))
    v = dense.init(jax.random.PRNGKey(1), xd)
    a, b = si.as_model(dense, v), si.as_model(dense, v["params"])
    np.testing.assert_array_equal(np.asarray(a.apply(xd)), np.asarray(b.apply(xd)))
    assert a.num_params == b.num_params == 9


def test_linen_module_that_updates_its_statistics_is_refused():
    net, variables, x, _ = _linen_bn_cnn()
    m = si.as_model(net(train=True), variables)
    with pytest.raises(si.errors.ModelError, match="use_running_average=True"):
        m.apply(x)
    with pytest.raises(si.errors.ModelError, match="variables dict"):
        si.as_model(net(), [variables["params"]])


def test_nnx_module_in_training_mode_is_refused_until_eval():
    nnx = pytest.importorskip("flax.nnx")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(3, 4, param_dtype=jnp.float64, rngs=rngs)
            self.bn = nnx.BatchNorm(4, param_dtype=jnp.float64, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.bn(self.lin(x)))

    net = Net(nnx.Rngs(0))
    with pytest.raises(si.errors.ModelError, match=r"BatchNorm bn, Dropout drop.*module.eval\(\)"):
        si.as_model(net)
    net.eval()
    m = si.as_model(net)
    x = jnp.asarray(np.random.default_rng(6).standard_normal((5, 3)))
    np.testing.assert_allclose(np.asarray(m.apply(x)), np.asarray(net(x)), rtol=1e-14)
    # per sample: the running statistics, not the batch's, normalise
    np.testing.assert_allclose(np.asarray(m.apply(x[:2])), np.asarray(m.apply(x)[:2]), rtol=1e-14)


def test_equinox_dropout_in_training_mode_is_refused_until_inference_mode():
    eqx = pytest.importorskip("equinox")

    class Net(eqx.Module):
        lin: eqx.nn.Linear
        drop: eqx.nn.Dropout

        def __init__(self, key):
            self.lin = eqx.nn.Linear(3, 4, key=key, dtype=jnp.float64)
            self.drop = eqx.nn.Dropout(0.5)

        def __call__(self, x, key=None):
            return self.drop(self.lin(x), key=key)

    net = Net(jax.random.PRNGKey(1))
    with pytest.raises(si.errors.ModelError, match=r"Dropout \.drop.*inference_mode"):
        si.as_model(net)
    m = si.as_model(eqx.nn.inference_mode(net))
    x = jnp.asarray(np.random.default_rng(7).standard_normal((5, 3)))
    np.testing.assert_allclose(np.asarray(m.apply(x)), np.asarray(jax.vmap(net.lin)(x)), rtol=1e-14)
