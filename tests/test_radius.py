"""T4 on torch networks: the certified radius of ReLU MLPs and CNNs (max-pooling included).

Truth: the arraynet product form for the same MLP weights, and for CNNs the defining property
itself — the input Jacobian (torch.func.jacrev) is unchanged at points sampled inside the ball
and changes just beyond the nearest boundary in the returned direction.
"""

from __future__ import annotations

import numpy as np
import pytest

import specinterp as si
from specinterp.errors import MemoryBudgetError

torch = pytest.importorskip("torch")
from specinterp.adapters import arraynet as an  # noqa: E402
from torch.func import jacrev, vmap  # noqa: E402

nn = torch.nn


def _jacobians(net, x):
    out = vmap(jacrev(lambda xi: net(xi[None])[0]))(x)
    return out.reshape(x.shape[0], out.shape[1], -1)


def test_torch_mlp_equals_arraynet_product_form():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.LeakyReLU(0.1), nn.Linear(8, 3)
    ).double()
    x = torch.randn(16, 6, dtype=torch.float64)
    rho = si.certified_radius(net, x)
    expected = si.certified_radius(an.from_torch(net), x.numpy())
    np.testing.assert_allclose(rho.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "cnn"])
def test_in_place_activations_give_the_same_radius(conv):
    """``ReLU(inplace=True)`` overwrote the pre-activations the radius is measured from (the
    MLP's radius came out 3.5–20× too large). Truth: arraynet's product form on the same
    weights (MLP) and the Jacobian-change property (CNN, as above)."""
    torch.manual_seed(5)
    if conv:
        net = nn.Sequential(
            nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(27, 4), nn.LeakyReLU(0.1, inplace=True), nn.Linear(4, 3),
        ).double()  # fmt: skip
        x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    else:
        net = nn.Sequential(
            nn.Linear(6, 10), nn.ReLU(inplace=True), nn.Linear(10, 8),
            nn.LeakyReLU(0.1, inplace=True), nn.Linear(8, 3),
        ).double()  # fmt: skip
        x = torch.randn(16, 6, dtype=torch.float64)
    rho, direction = si.certified_radius(net, x, return_direction=True)
    if not conv:
        expected = si.certified_radius(an.from_torch(net), x.numpy())
        np.testing.assert_allclose(rho.numpy(), expected, rtol=1e-10)
        pre = si.as_model(net).layer_factors(x).preactivations  # the product form's, too
        torch.testing.assert_close(pre[0], net[0](x), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(pre[1], net[2](torch.relu(net[0](x))), rtol=1e-12, atol=1e-12)
    shape = (-1, *([1] * (x.ndim - 1)))
    j0 = _jacobians(net, x)
    inside = x + 0.99 * rho.reshape(shape) * direction.reshape(x.shape)
    torch.testing.assert_close(_jacobians(net, inside), j0, rtol=1e-9, atol=1e-12)
    outside = _jacobians(net, x + 1.001 * rho.reshape(shape) * direction.reshape(x.shape))
    assert bool(((outside - j0).reshape(x.shape[0], -1).abs().amax(dim=1) > 1e-9).all())


def test_affine_network_has_infinite_radius():
    x = torch.randn(3, 4, dtype=torch.float64)
    rho = si.certified_radius(nn.Sequential(nn.Linear(4, 2)).double(), x)
    assert torch.all(torch.isinf(rho))


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [
            nn.Conv2d(1, 4, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 2),
            nn.LeakyReLU(0.05),
            nn.Flatten(),
            nn.Linear(16, 4),
        ],
        lambda: [
            nn.Conv2d(1, 3, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(48, 5),
            nn.ReLU(),
            nn.Linear(5, 4),
        ],
    ],
    ids=["conv-relu-maxpool", "strided-conv"],
)
def test_relu_cnn_jacobian_constant_inside_and_changes_outside(layers):
    torch.manual_seed(1)
    net = nn.Sequential(*layers()).double().eval()
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    rho, direction = si.certified_radius(net, x, return_direction=True)
    assert torch.all(torch.isfinite(rho)) and torch.all(rho > 0)
    j0 = _jacobians(net, x)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):  # random points strictly inside the ball
        u = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        u = u / u.reshape(8, -1).norm(dim=1)[:, None, None, None]
        inside = x + 0.99 * rho[:, None, None, None] * u
        torch.testing.assert_close(_jacobians(net, inside), j0, rtol=1e-9, atol=1e-12)
    step = direction.reshape(x.shape) * rho[:, None, None, None]
    np.testing.assert_allclose(direction.norm(dim=1).numpy(), 1.0, rtol=1e-12)
    outside = _jacobians(net, x + 1.001 * step)
    changed = (outside - j0).reshape(8, -1).abs().amax(dim=1) > 1e-9
    assert bool(changed.all())


def test_chunks_within_the_budget_agree_and_a_tiny_budget_is_refused():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)).double()
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    whole = si.certified_radius(net, x)
    per_sample = 3 * 72 * 64 * 8
    torch.testing.assert_close(si.certified_radius(net, x, max_bytes=2 * per_sample), whole)
    with pytest.raises(MemoryBudgetError, match="max_bytes"):
        si.certified_radius(net, x, max_bytes=per_sample // 2)


def test_equinox_mlp_equals_the_torch_route_on_the_same_weights():
    jax = pytest.importorskip("jax")
    eqx = pytest.importorskip("equinox")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    m = eqx.nn.MLP(5, 3, 12, 2, key=jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (20, 5), dtype=jnp.float64)
    rho, direction = si.certified_radius(m, x, return_direction=True)
    linears = [nn.Linear(lay.in_features, lay.out_features).double() for lay in m.layers]
    with torch.no_grad():
        for lin, lay in zip(linears, m.layers, strict=True):
            lin.weight.copy_(torch.tensor(np.array(lay.weight)))
            lin.bias.copy_(torch.tensor(np.array(lay.bias)))
    seq = nn.Sequential(linears[0], nn.ReLU(), linears[1], nn.ReLU(), linears[2])
    expected, expected_dir = si.certified_radius(
        seq, torch.tensor(np.array(x)), return_direction=True
    )
    np.testing.assert_allclose(np.asarray(rho), expected.numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(direction), expected_dir.numpy(), atol=1e-12)
    smooth = eqx.nn.MLP(5, 3, 12, 2, activation=jnp.tanh, key=jax.random.key(0), dtype=jnp.float64)
    with pytest.raises(si.errors.ModelError, match="piecewise-linear"):
        si.certified_radius(smooth, x)
    plain = si.as_model(lambda p, xx: xx @ p, jnp.ones((5, 3)))
    with pytest.raises(si.errors.ModelError, match="MLP"):
        si.certified_radius(plain, x)


def test_nnx_sequential_mlp_equals_the_torch_route_on_the_same_weights():
    jax = pytest.importorskip("jax")
    nnx = pytest.importorskip("flax.nnx")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rngs = nnx.Rngs(0)
    seq = nnx.Sequential(
        nnx.Linear(4, 9, param_dtype=jnp.float64, rngs=rngs),
        nnx.relu,
        nnx.Linear(9, 6, param_dtype=jnp.float64, rngs=rngs),
        jax.nn.leaky_relu,
        nnx.Linear(6, 2, param_dtype=jnp.float64, rngs=rngs),
    )
    x = jax.random.normal(jax.random.key(3), (15, 4), dtype=jnp.float64)
    rho = si.certified_radius(seq, x)
    linears = [lay for lay in seq.layers if isinstance(lay, nnx.Linear)]
    torch_lin = [nn.Linear(lay.in_features, lay.out_features).double() for lay in linears]
    with torch.no_grad():
        for t, lay in zip(torch_lin, linears, strict=True):
            t.weight.copy_(torch.tensor(np.array(lay.kernel[...]).T))
            t.bias.copy_(torch.tensor(np.array(lay.bias[...])))
    ref = nn.Sequential(torch_lin[0], nn.ReLU(), torch_lin[1], nn.LeakyReLU(0.01), torch_lin[2])
    expected = si.certified_radius(ref, torch.tensor(np.array(x)))
    np.testing.assert_allclose(np.asarray(rho), expected.numpy(), rtol=1e-12)


def test_linen_sequential_mlp_equals_the_nnx_and_torch_routes():
    jax = pytest.importorskip("jax")
    linen = pytest.importorskip("flax.linen")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    seq = linen.Sequential(
        [
            linen.Dense(7, param_dtype=jnp.float64),
            linen.relu,
            linen.Dense(3, param_dtype=jnp.float64),
        ]
    )
    x = jax.random.normal(jax.random.key(4), (12, 5), dtype=jnp.float64)
    variables = seq.init(jax.random.key(0), x)
    rho = si.certified_radius(si.as_model(seq, variables), x)
    p = variables["params"]
    lin = [nn.Linear(5, 7).double(), nn.Linear(7, 3).double()]
    with torch.no_grad():
        for t, name in zip(lin, ["layers_0", "layers_2"], strict=True):
            t.weight.copy_(torch.tensor(np.array(p[name]["kernel"]).T))
            t.bias.copy_(torch.tensor(np.array(p[name]["bias"])))
    expected = si.certified_radius(
        nn.Sequential(lin[0], nn.ReLU(), lin[1]), torch.tensor(np.array(x))
    )
    np.testing.assert_allclose(np.asarray(rho), expected.numpy(), rtol=1e-12)
