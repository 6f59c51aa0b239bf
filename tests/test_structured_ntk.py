"""The layer-wise (structured) NTK equals the Jacobian contraction ``G Gᵀ`` on every backend.

Truth: ``G`` from ``torch.func.vmap(jacrev)`` (torch), the protocol's VJPs row by row
(``native=False``: the reference route), in float64; the structured route never forms ``G``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from specinterp.adapters import arraynet
from torch.func import functional_call, jacrev, vmap

import specinterp as si
from specinterp import operators


def _torch_mlp(bias_middle: bool = True) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(12, 9),
        torch.nn.Tanh(),
        torch.nn.Linear(9, 7, bias=bias_middle),
        torch.nn.ReLU(),
        torch.nn.Linear(7, 4),
    ).double()


def _func_ntk(net: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> np.ndarray:
    """``G₁ G₂ᵀ`` with ``G`` from ``vmap(jacrev)`` — torch's own recipe."""
    params = dict(net.named_parameters())

    def single(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(net, p, (xi[None],))[0]

    def g(x: torch.Tensor) -> torch.Tensor:
        jac = vmap(jacrev(single), in_dims=(None, 0))(params, x)
        return torch.cat([j.reshape(x.shape[0] * 4, -1) for j in jac.values()], dim=1)

    return (g(x1) @ g(x2).T).detach().numpy()


@pytest.mark.parametrize("bias_middle", [True, False])
@pytest.mark.parametrize("cross", [False, True])
def test_torch_structured_ntk_equals_the_jacobian_contraction(bias_middle, cross):
    net = _torch_mlp(bias_middle)
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(6, 3, 4, generator=gen, dtype=torch.float64)
    x2 = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64) if cross else None
    k, path = operators.ntk(net, x1, x2, return_path=True)
    assert path == "structured"
    truth = _func_ntk(net, x1, x1 if x2 is None else x2)
    np.testing.assert_allclose(k.numpy(), truth, rtol=1e-12, atol=1e-12)
    kt = operators.ntk(net, x1, x2, trace=True)
    n2 = truth.shape[1] // 4
    trace_truth = truth.reshape(6, 4, n2, 4).trace(axis1=1, axis2=3)
    np.testing.assert_allclose(kt.numpy(), trace_truth, rtol=1e-12, atol=1e-12)


def test_arraynet_structured_ntk_and_the_reference_route():
    net = arraynet.from_torch(_torch_mlp())
    x = np.random.default_rng(2).standard_normal((7, 3, 4))
    k, path = operators.ntk(net, x, return_path=True)
    reference, ref_path = operators.ntk(net, x, native=False, return_path=True)
    assert (path, ref_path) == ("structured", "Jacobian products")
    np.testing.assert_allclose(k, reference, rtol=1e-12, atol=1e-12)
    x2 = x[:3] + 0.5
    np.testing.assert_allclose(
        operators.ntk(net, x, x2, trace=True),
        operators.ntk(net, x, x2, trace=True, native=False),
        rtol=1e-12,
        atol=1e-12,
    )


def test_float32_structured_ntk_within_float32_rounding():
    net = _torch_mlp()
    x = torch.randn(16, 3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    truth = _func_ntk(net, x, x)
    k32 = operators.ntk(net.float(), x.float()).double().numpy()
    scale = np.abs(truth).max()
    assert np.abs(k32 - truth).max() / scale < 50 * np.finfo(np.float32).eps


def test_ntk_operator_is_dense_backed_on_the_structured_route():
    net = _torch_mlp()
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    op = si.ntk_operator(net, x)
    assert op.path == "structured"
    m = si.as_model(net)
    u = torch.randn(6 * 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    by_products = m.jvp_params(x, m.vjp_params(x, u.reshape(6, 4))).reshape(-1)
    np.testing.assert_allclose(op.matvec(u).numpy(), by_products.numpy(), rtol=1e-12, atol=1e-12)


def test_models_without_the_layerwise_form_take_the_jacobian_route():
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    ).double()
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    k, path = operators.ntk(cnn, x, return_path=True)
    assert path == "native Jacobian"
    assert si.ntk_operator(cnn, x).path == "Jacobian products"
    np.testing.assert_allclose(k.numpy(), _func_ntk_cnn(cnn, x), rtol=1e-12, atol=1e-12)
    # a subset of the parameters: K is over that subset, not the whole MLP's θ
    net = _torch_mlp()
    sub = si.as_model(net, param_names=["5.weight", "5.bias"])
    xs = torch.randn(5, 12, dtype=torch.float64)
    k_sub, sub_path = operators.ntk(sub, xs, return_path=True)
    assert sub_path == "structured"  # the layer-wise sum over the differentiated layers only
    h = net[:5](xs)  # the last layer's input: K = (h hᵀ + 1) ⊗ I_C over its weights and bias
    expected = np.kron((h @ h.T + 1).detach().numpy(), np.eye(4))
    np.testing.assert_allclose(k_sub.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "frozen", [["1.weight", "1.bias"], ["3.bias", "5.weight"], ["1.weight", "3.weight", "5.bias"]]
)
def test_structured_ntk_over_the_trained_parameters_only(frozen):
    """A partly frozen MLP (whole layers, a weight without its bias, a bias without its
    weight) keeps the layer-wise route, summing only the differentiated weights' and biases'
    terms; ``K``, the trace NTK and the cross-NTK equal ``G Gᵀ`` of torch's ``vmap(jacrev)``
    over the trainable parameters."""
    net = _torch_mlp()
    for name, p in net.named_parameters():
        p.requires_grad_(name not in frozen)
    model = si.as_model(net)
    x1, x2 = torch.randn(5, 12, dtype=torch.float64), torch.randn(3, 12, dtype=torch.float64)
    trained = {k: v.detach() for k, v in net.named_parameters() if k not in frozen}
    fixed = {k: v.detach() for k, v in net.named_parameters() if k in frozen}

    def jac(x):
        def single(p, xi):
            return functional_call(net, {**fixed, **p}, (xi[None],))[0]

        j = vmap(jacrev(single), in_dims=(None, 0))(trained, x)
        return torch.cat([t.reshape(x.shape[0] * 4, -1) for t in j.values()], dim=1)

    g1, g2 = jac(x1), jac(x2)
    k, path = operators.ntk(model, x1, return_path=True)
    assert path == "structured"
    np.testing.assert_allclose(k.numpy(), (g1 @ g1.T).numpy(), rtol=1e-12, atol=1e-12)
    cross = operators.ntk(model, x1, x2)
    np.testing.assert_allclose(cross.numpy(), (g1 @ g2.T).numpy(), rtol=1e-12, atol=1e-12)
    want_trace = torch.einsum("iap,jap->ij", g1.reshape(5, 4, -1), g1.reshape(5, 4, -1))
    np.testing.assert_allclose(
        operators.ntk(model, x1, trace=True).numpy(), want_trace.numpy(), rtol=1e-12, atol=1e-12
    )


def _func_ntk_cnn(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    params = dict(net.named_parameters())

    def single(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(net, p, (xi[None],))[0]

    jac = vmap(jacrev(single), in_dims=(None, 0))(params, x)
    g = torch.cat([j.reshape(x.shape[0] * 3, -1) for j in jac.values()], dim=1)
    return (g @ g.T).detach().numpy()


def test_jax_equinox_and_flax_structured_ntk():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    eqx = pytest.importorskip("equinox")
    nnx = pytest.importorskip("flax.nnx")
    x = jnp.asarray(np.random.default_rng(6).standard_normal((5, 6)))
    mlp = eqx.nn.MLP(
        6, 3, 8, 2, activation=jax.nn.softplus, use_bias=False, use_final_bias=True,
        key=jax.random.PRNGKey(0), dtype=jnp.float64,
    )  # fmt: skip
    seq = nnx.Sequential(
        nnx.Linear(6, 9, rngs=nnx.Rngs(0), param_dtype=jnp.float64),
        jax.nn.tanh,
        nnx.Linear(9, 4, rngs=nnx.Rngs(1), param_dtype=jnp.float64),
    )
    for module in (mlp, seq):
        m = si.as_model(module)
        k, path = operators.ntk(m, x, x[:2] * 2, return_path=True)
        assert path == "structured"
        np.testing.assert_allclose(
            np.asarray(k),
            np.asarray(operators.ntk(m, x, x[:2] * 2, native=False)),
            rtol=1e-12,
            atol=1e-12,
        )
        g = jax.vmap(jax.jacrev(lambda t, xi, m=m: m._natural(t, xi[None])[0]), (None, 0))(
            m.flat, x
        )
        g = np.asarray(g).reshape(-1, m.num_params)
        np.testing.assert_allclose(np.asarray(operators.ntk(m, x)), g @ g.T, rtol=1e-12, atol=1e-12)


def test_jax_function_without_a_product_form_takes_one_compiled_ntk_program():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(7)
    params = [jnp.asarray(rng.standard_normal((6, 5))), jnp.asarray(rng.standard_normal(6))]

    def f(p, x):  # a plain function: no product form is known for it
        return jnp.sin(x @ p[0].T + p[1])

    m = si.as_model(f, params)
    x = jnp.asarray(rng.standard_normal((90, 5)))  # 540 rows: the blocked Gram
    k, path = operators.ntk(m, x, return_path=True)
    assert path == "native NTK program"
    reference = operators.ntk(m, x, native=False)
    np.testing.assert_allclose(np.asarray(k), np.asarray(reference), rtol=1e-12, atol=1e-12)
