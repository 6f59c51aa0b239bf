"""Spectral regularisers (theory §5): values against dense Jacobians, gradients across
frameworks and against finite differences, and the arraynet trainer's penalty."""

from __future__ import annotations

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

import specinterp as si

from .nets import torch_mlp

torch = pytest.importorskip("torch")
from specinterp.adapters import torch_regularizers as treg  # noqa: E402


@pytest.fixture(scope="module")
def net_and_x():
    return torch_mlp(7), torch.as_tensor(np.random.default_rng(2).standard_normal((4, 5)))


@pytest.fixture
def jax_twin(net_and_x):
    """The same network as a JAX function of the batch, and the batch as a JAX array."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from .nets import jax_apply

    net, x = net_and_x
    fn, params = jax_apply(net)
    return (lambda z: fn(params, z)), jax.numpy.asarray(x.numpy())


def test_frobenius_penalty_is_unbiased(net_and_x):
    net, x = net_and_x
    jac = si.input_jacobian(si.as_model(net), x).numpy()
    truth = np.mean(np.sum(jac**2, axis=(1, 2))) / 5
    gen = torch.Generator().manual_seed(0)
    vals = np.array([treg.jacobian_frobenius(net, x, generator=gen).item() for _ in range(2000)])
    assert abs(vals.mean() - truth) <= 5 * vals.std() / np.sqrt(vals.size)


def test_spectral_norm_and_entropy_penalties(net_and_x):
    net, x = net_and_x
    jac = si.input_jacobian(si.as_model(net), x).numpy()
    s1 = np.linalg.svd(jac, compute_uv=False)[:, 0]
    val = treg.jacobian_spectral_norm(
        net, x, num_iters=60, generator=torch.Generator().manual_seed(0)
    ).item()
    assert val == pytest.approx(np.mean(s1**2), rel=1e-8)
    h = treg.jacobian_entropy(net, x).item()
    assert h == pytest.approx(float(np.mean(si.spectral_entropy(jac))), rel=1e-12)
    treg.jacobian_entropy(net, x).backward()
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and torch.all(torch.isfinite(p.grad)) for p in weights)
    net.zero_grad()


def test_arraynet_penalty_gradient_matches_torch_and_finite_differences(net_and_x):
    net, x = net_and_x
    v = torch.as_tensor(np.random.default_rng(3).standard_normal(tuple(x.shape)))
    net.zero_grad()
    jv = torch.func.jvp(net, (x,), (v,))[1]
    penalty = jv.pow(2).sum() / x.shape[0]
    penalty.backward()
    torch_grad = torch.cat(
        [  # the last bias does not move J: no gradient there
            (torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1)
            for p in net.parameters()
        ]
    ).numpy()
    net.zero_grad()
    m = si.as_model(an.from_torch(net))
    val, grad = m.jacobian_penalty_grad(x.numpy(), v.numpy())
    assert float(val) == pytest.approx(penalty.item(), rel=1e-12)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-9, atol=1e-12)
    theta = m.flat_params
    h = 1e-6
    for j in np.random.default_rng(0).choice(theta.size, 8, replace=False):
        e = np.zeros_like(theta)
        e[j] = h
        up = m.with_params(theta + e).jacobian_penalty_grad(x.numpy(), v.numpy())[0]
        dn = m.with_params(theta - e).jacobian_penalty_grad(x.numpy(), v.numpy())[0]
        assert (up - dn) / (2 * h) == pytest.approx(grad[j], rel=1e-6, abs=1e-9)


def test_jax_penalties_match_torch(net_and_x, jax_twin):
    import jax
    from specinterp.adapters import jax as jreg

    net, x = net_and_x
    fj, xj = jax_twin
    h = float(jreg.jacobian_entropy(fj, xj))
    assert h == pytest.approx(treg.jacobian_entropy(net, x).item(), rel=1e-10)
    s = float(jreg.jacobian_spectral_norm(fj, xj, jax.random.PRNGKey(0), num_iters=60))
    jac = si.input_jacobian(si.as_model(net), x).numpy()
    assert s == pytest.approx(np.mean(np.linalg.svd(jac, compute_uv=False)[:, 0] ** 2), rel=1e-8)
    f = float(jreg.jacobian_frobenius(fj, xj, jax.random.PRNGKey(1), 8))
    assert np.isfinite(f) and f > 0


def test_trainer_penalty_lowers_jacobian_norm():
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    x = x[:600] / 16.0
    y = y[:600]
    net = an.init_mlp([64, 32, 10], seed=0)
    plain = an.train(net, x, y, epochs=10, lr=3e-3, seed=0)
    reg = an.train(net, x, y, epochs=10, lr=3e-3, seed=0, jacobian_penalty=1.0)
    fro = [np.mean(np.sum(si.input_jacobian(n_, x) ** 2, axis=(1, 2))) for n_ in (plain, reg)]
    assert fro[1] < 0.8 * fro[0]


def test_one_api_across_frameworks(net_and_x, jax_twin):
    # specinterp.regularizers dispatches on the batch: the same call on torch and JAX gives
    # the framework's value, equal to the dense truth (entropy, spectral norm) or, with the
    # same seed, reproducible (Frobenius); rng is an int, a Generator or a key
    import jax

    from specinterp.errors import ModelError

    net, x = net_and_x
    fj, xj = jax_twin

    jac = si.input_jacobian(si.as_model(net), x).numpy()
    s1 = np.mean(np.linalg.svd(jac, compute_uv=False)[:, 0] ** 2)

    def val(v):
        return v.detach().item() if hasattr(v, "detach") else float(v)

    for f, xb in ((net, x), (fj, xj)):
        got = val(si.regularizers.jacobian_spectral_norm(f, xb, num_iters=60, rng=0))
        assert got == pytest.approx(s1, rel=1e-8)
        h = val(si.regularizers.jacobian_entropy(f, xb))
        assert h == pytest.approx(float(np.mean(si.spectral_entropy(jac))), rel=1e-10)
    a = si.regularizers.jacobian_frobenius(net, x, rng=3).item()
    b = treg.jacobian_frobenius(net, x, generator=torch.Generator().manual_seed(3)).item()
    assert a == b
    from specinterp.adapters import jax as jreg

    aj = float(si.regularizers.jacobian_frobenius(fj, xj, num_projections=4, rng=5))
    assert aj == float(jreg.jacobian_frobenius(fj, xj, jax.random.key(5), 4))
    with pytest.raises(ValueError, match=r"rng=jax\.random\.key"):
        si.regularizers.jacobian_frobenius(fj, xj)
    with pytest.raises(ModelError, match="jacobian_penalty"):
        si.regularizers.jacobian_frobenius(lambda z: z, x.numpy())
    with pytest.raises(ValueError, match="num_projections"):
        si.regularizers.jacobian_frobenius(net, x, num_projections=0)
    # the as_model wrapper holds a copy of the parameters: nothing to train through
    with pytest.raises(TypeError, match="not the as_model"):
        si.regularizers.jacobian_entropy(si.as_model(net), x)
    with pytest.raises(TypeError, match="callable"):
        si.regularizers.jacobian_frobenius(3, x)
