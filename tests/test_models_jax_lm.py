"""JAX models on token ids: a user-defined Flax linen LM, a Flax NNX attention block, Equinox.

References are dense JAX autodiff in float64 — ``jax.hessian`` of the mean token
cross-entropy written with ``jax.nn.log_softmax``, the parameter Jacobian by ``jax.jacrev``,
and input Jacobians of the model rewritten by hand as a function of its embeddings.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy
nn = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")

from jax.flatten_util import ravel_pytree  # noqa: E402

import specinterp as si  # noqa: E402
from specinterp.errors import LabelError, ModelError  # noqa: E402
from specinterp.model import input_space  # noqa: E402

V, T, D = 9, 4, 6
F64 = jnp.float64


def _token_ce(z, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z, -1), y[..., None], -1))


def _check_operators(model, apply_flat, flat, x, y):
    """Hessian, GGN and NTK of ``model`` against dense JAX autodiff of ``apply_flat``."""
    h_ref = jax.jit(jax.hessian(lambda t: _token_ce(apply_flat(t), y)))(flat)
    z = apply_flat(flat)
    jac = jax.jit(jax.jacrev(lambda t: apply_flat(t).reshape(-1)))(flat)
    hz = jax.jit(jax.hessian(lambda zz: _token_ce(zz.reshape(z.shape), y)))(z.reshape(-1))
    np.testing.assert_allclose(si.hessian(model, x, y, "cross_entropy"), h_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        si.ggn(model, x, y, "cross_entropy"), jac.T @ hz @ jac, rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(si.ntk(model, x), jac @ jac.T, rtol=0, atol=1e-10)


class LinenLM(nn.Module):
    """A user-defined linen module (not one of Flax's layers): token + position embeddings."""

    @nn.compact
    def __call__(self, ids):
        tok = nn.Embed(V, D, name="tok", param_dtype=F64)(ids)
        pos = nn.Embed(T, D, name="pos", param_dtype=F64)(jnp.arange(ids.shape[-1]))
        h = nn.tanh(nn.Dense(D, param_dtype=F64)(tok + pos))
        return nn.Dense(V, param_dtype=F64)(h)


@pytest.fixture(scope="module")
def tokens():
    x = jax.random.randint(jax.random.key(1), (3, T), 0, V)
    y = jax.random.randint(jax.random.key(2), (3, T), 0, V)
    return x, y


def test_user_linen_module_on_token_ids(tokens):
    x, y = tokens
    m = LinenLM()
    variables = m.init(jax.random.key(0), x)
    model = si.as_model(m, variables)
    assert "LinenLM" in repr(model)
    flat, unravel = ravel_pytree(variables)
    _check_operators(model, lambda t: m.apply(unravel(t), x), flat, x, y)
    p = variables["params"]

    def from_embeddings(e):  # the same network written by hand as a function of e
        h = jnp.tanh(
            (e + p["pos"]["embedding"][:T]) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
        )
        return (h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]).reshape(-1)

    view, e = input_space(model, x)
    np.testing.assert_array_equal(e, p["tok"]["embedding"][x])
    j_ref = jax.vmap(jax.jacrev(lambda ei: from_embeddings(ei[None])))(e).reshape(3, T * V, -1)
    np.testing.assert_allclose(si.input_jacobian(model, x), j_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(si.input_jacobian(view, e, native=False), j_ref, atol=1e-12)
    with pytest.raises(LabelError, match="clamp"):
        model.apply(x + V)


class NnxBlock(nnx.Module):
    """Embedding, one causal self-attention layer written with nnx.Linear, a readout."""

    def __init__(self, rngs):
        self.embed = nnx.Embed(V, D, param_dtype=F64, rngs=rngs)
        self.qkv = nnx.Linear(D, 3 * D, param_dtype=F64, rngs=rngs)
        self.norm = nnx.LayerNorm(D, param_dtype=F64, rngs=rngs)
        self.out = nnx.Linear(D, V, param_dtype=F64, rngs=rngs)

    def body(self, h):
        q, k, v = jnp.split(self.qkv(self.norm(h)), 3, axis=-1)
        scores = q @ jnp.swapaxes(k, -1, -2) / np.sqrt(D)
        mask = jnp.tril(jnp.ones((h.shape[-2], h.shape[-2]), dtype=bool))
        att = jax.nn.softmax(jnp.where(mask, scores, -1e9), axis=-1)
        return self.out(h + att @ v)

    def __call__(self, ids):
        return self.body(self.embed(ids))


def test_nnx_block_on_token_ids(tokens):
    x, y = tokens
    block = NnxBlock(nnx.Rngs(0))
    model = si.as_model(block)
    assert "flax.nnx NnxBlock" in repr(model)
    graphdef, params, rest = nnx.split(block, nnx.Param, ...)
    flat, unravel = ravel_pytree(params)
    _check_operators(model, lambda t: nnx.merge(graphdef, unravel(t), rest)(x), flat, x, y)
    e = input_space(model, x)[1]
    j_ref = jax.vmap(jax.jacrev(lambda ei: block.body(ei[None]).reshape(-1)))(e)
    np.testing.assert_allclose(si.input_jacobian(model, x), j_ref.reshape(3, T * V, -1), atol=1e-12)
    with pytest.raises(LabelError, match="9 rows"):
        model.apply(x - 1 - jnp.max(x))


def test_nnx_embedding_discovery_errors(tokens):
    x, _ = tokens

    class TwoTables(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Embed(V, D, param_dtype=F64, rngs=rngs)
            self.b = nnx.Embed(V, D, param_dtype=F64, rngs=rngs)
            self.out = nnx.Linear(D, V, param_dtype=F64, rngs=rngs)

        def __call__(self, ids):
            return self.out(self.a(ids) * self.b(ids))

    two = TwoTables(nnx.Rngs(0))
    with pytest.raises(ModelError, match="embedding='name'"):
        si.input_jacobian(two, x)
    named = si.as_model(two, embedding="b")
    e = input_space(named, x)[1]
    np.testing.assert_array_equal(e, two.b(x))
    with pytest.raises(ModelError, match="no Embed layer 'c'"):
        si.input_jacobian(si.as_model(two, embedding="c"), x)


def test_equinox_model_on_token_ids(tokens):
    eqx = pytest.importorskip("equinox")
    x, y = tokens

    class Eqx(eqx.Module):
        emb: eqx.nn.Embedding
        lin: eqx.nn.Linear

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.emb = eqx.nn.Embedding(V, D, key=k1, dtype=F64)
            self.lin = eqx.nn.Linear(D, V, key=k2, dtype=F64)

        def __call__(self, ids):  # one sequence (T,) -> (T, V)
            return jax.vmap(lambda i: self.lin(jnp.tanh(self.emb(i))))(ids)

    m = Eqx(jax.random.key(0))
    model = si.as_model(m)
    params, static = eqx.partition(m, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    _check_operators(model, lambda t: jax.vmap(eqx.combine(unravel(t), static))(x), flat, x, y)
    # the embedded view: the per-token embeddings, and J by autodiff of lin(tanh(e))
    e = input_space(model, x)[1]
    np.testing.assert_array_equal(e, m.emb.weight[x])
    j_ref = jax.vmap(jax.jacrev(lambda ei: jax.vmap(lambda r: m.lin(jnp.tanh(r)))(ei).reshape(-1)))(
        e
    )
    np.testing.assert_allclose(si.input_jacobian(model, x), j_ref.reshape(3, T * V, -1), atol=1e-12)
    with pytest.raises(LabelError, match="9 rows"):
        model.apply(x + V)
    plain = si.as_model(lambda p, xx: jax.vmap(eqx.combine(p, static))(xx), params)
    with pytest.raises(ModelError, match="function of the embeddings"):  # no layers to find
        si.input_jacobian(plain, x)
