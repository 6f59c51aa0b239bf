"""arraynet on every array namespace, its trainer, and from_torch."""

from __future__ import annotations

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

import specinterp as si
from specinterp import operators


def _cnn(xp_mod, dtype):
    rng = np.random.default_rng(0)

    def arr(shape):
        return xp_mod.asarray(rng.standard_normal(shape) * 0.5, dtype=dtype)

    return an.Sequential(
        [
            an.Conv2d(arr((3, 2, 3, 3)), arr((3,)), stride=1, padding=1),
            an.Tanh(),
            an.Conv2d(arr((2, 3, 2, 2)), arr((2,)), stride=2),
            an.GELU(),
            an.Flatten(),
            an.Dense(arr((3, 8)), arr((3,))),
        ]
    )


def test_arraynet_runs_on_every_backend(xp_eager):
    xp = xp_eager
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 4, 4))
    y = rng.integers(0, 3, size=3)
    ref = si.as_model(_cnn(np, np.float64))
    got = si.as_model(_cnn(xp.xp, xp.dtype))
    xa = xp.asarray(x)
    ya = xp.xp.asarray(y)
    tol = 1e-10 if xp.is_float64 else 1e-4
    for f in (operators.input_jacobian, operators.param_jacobian):
        np.testing.assert_allclose(xp.to_numpy(f(got, xa)), f(ref, x), rtol=tol, atol=tol)
    v = rng.standard_normal(ref.num_params)
    hv = got.hvp(xa, ya, xp.asarray(v), "cross_entropy")
    np.testing.assert_allclose(
        xp.to_numpy(hv), ref.hvp(x, y, v, "cross_entropy"), rtol=tol, atol=tol
    )


def test_trainer_learns_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    net = an.init_mlp([64, 32, 10], seed=0)
    before = si.as_model(net).loss(x, y, "cross_entropy")
    trained = an.train(net, x[:1400], y[:1400], epochs=25, lr=3e-3, seed=0)
    m = si.as_model(trained)
    assert m.loss(x, y, "cross_entropy") < 0.5 * before
    acc = np.mean(np.argmax(m.apply(x[1400:]), axis=1) == y[1400:])
    assert acc > 0.9
    again = an.train(net, x[:1400], y[:1400], epochs=25, lr=3e-3, seed=0)
    np.testing.assert_array_equal(si.as_model(again).flat_params, m.flat_params)  # seeded


def test_sgd_step_is_a_gradient_step(rng):
    net = an.init_mlp([3, 4, 2], seed=1)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    m = si.as_model(net)
    g = m.loss_grad(x, y, "mse")
    stepped = an.train(net, x, y, loss="mse", optimizer="sgd", lr=0.1, epochs=1, batch_size=6)
    np.testing.assert_allclose(
        si.as_model(stepped).flat_params, m.flat_params - 0.1 * g, rtol=1e-12
    )


def test_from_torch_rejects_unsupported_layers():
    torch = pytest.importorskip("torch")
    with pytest.raises(si.errors.ModelError, match="does not support"):
        an.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.GELU()))
    with pytest.raises(si.errors.ModelError, match="Sequential"):
        an.from_torch(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("slope", [-0.3, 0.0, 0.01, 1.0, 2.5])
def test_relu_family_by_maximum_equals_torch(slope):
    """ReLU and leaky ReLU are written with maximum / minimum (NumPy's where is ~8× slower):
    the same values as torch's, infinities and NaN included."""
    torch = pytest.importorskip("torch")
    z = np.array([-2.0, -0.5, -0.0, 0.0, 0.5, 3.0, np.nan, -np.inf, np.inf])
    got = an.LeakyReLU(slope).f(z)
    want = torch.nn.functional.leaky_relu(torch.tensor(z), slope).numpy()
    if slope == 0:  # torch forms 0·(−∞) = NaN there; a zero slope is ReLU, whose value is 0
        want[np.isneginf(z)] = 0.0
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(an.ReLU().f(z), torch.relu(torch.tensor(z)).numpy())


@pytest.mark.parametrize("ggn", [False, True], ids=["hessian", "ggn"])
def test_first_dense_compression_on_every_backend(xp_eager, ggn):
    """A network opening with ``Flatten`` and a dense layer, four samples of 2·3·2 = 12 inputs:
    the Hessian (GGN) is ``L H̃ Lᵀ`` with ``L`` orthonormal, and ``eigsh`` through the
    compression gives its top eigenvalues. Truth: the dense matrix from the whole operator's
    products (arraynet's R-operator, or Jacobian products), in float64 NumPy."""
    xp = xp_eager
    rng = np.random.default_rng(2)

    def net(mod, dtype):
        def arr(shape):
            return mod.asarray(np.random.default_rng(3).standard_normal(shape), dtype=dtype)

        return an.Sequential(
            [an.Flatten(), an.Dense(arr((5, 12)), arr((5,))), an.Tanh(), an.Dense(arr((3, 5)))]
        )

    x, y = rng.standard_normal((4, 2, 3, 2)), rng.integers(0, 3, size=4)
    build = si.ggn_operator if ggn else si.hessian_operator
    whole = build(si.as_model(net(np, np.float64)), x, y, "cross_entropy")
    dense = np.stack([whole.matvec(e) for e in np.eye(whole.shape[0])], axis=1)
    op = build(si.as_model(net(xp.xp, xp.dtype)), xp.asarray(x), xp.xp.asarray(y), "cross_entropy")
    comp = op.compression()
    m = comp.operator.shape[0]
    assert m == op.shape[0] - 5 * (12 - 4)
    eye = np.eye(m)
    lmat = np.stack([xp.to_numpy(comp.lift(xp.asarray(eye[j]))) for j in range(m)], axis=1)
    small = np.stack(
        [xp.to_numpy(comp.operator.matvec(xp.asarray(eye[j]))) for j in range(m)], axis=1
    )
    tol = 1e-10 if xp.is_float64 else 2e-4
    np.testing.assert_allclose(lmat.T @ lmat, eye, atol=tol)
    np.testing.assert_allclose(lmat @ small @ lmat.T, dense, atol=tol * np.abs(dense).max())
    res = si.linalg.eigsh(op, 3, tol=1e-6 if xp.is_float64 else 1e-3)
    want = np.linalg.eigvalsh(dense)[::-1][:3]
    np.testing.assert_allclose(xp.to_numpy(res.values), want, rtol=1e-5 if xp.is_float64 else 1e-3)
