"""Float64 cross-checks of every model-level operator on an MLP and a CNN.

(a) Each adapter against central finite differences of its own forward pass (h = 1e-6: the
truncation error O(h²) and rounding O(eps/h) give a relative error ≲ 1e-8; asserted at 1e-6).
(b) The same weights in torch, JAX and arraynet agree to 1e-8 relative.
(c) Every native dense path agrees with the path derived from the protocol's products, and
every LinearOperator with its dense matrix.
"""

from __future__ import annotations

import numpy as np
import pytest

from specinterp import _xp, operators
from specinterp.losses import loss_gradient

from .nets import convert, three_models, torch_cnn, torch_mlp

ADAPTERS = ["torch", "arraynet", "jax"]
H = 1e-6


def _case(kind):
    rng = np.random.default_rng(5)
    if kind == "mlp":
        tnet, x = torch_mlp(), rng.standard_normal((4, 5))
    else:
        tnet, x = torch_cnn(), rng.standard_normal((3, 2, 6, 6))
    y_reg = rng.standard_normal((x.shape[0], 3))
    y_cls = rng.integers(0, 3, size=x.shape[0])
    return three_models(tnet), x, y_reg, y_cls


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def case(request):
    return _case(request.param)


def _np(a):
    return _xp.to_numpy(a)


def _close(a, b, rtol):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(np.max(np.abs(b)), 1e-300))


def _dense_all(model, name, x, y_reg, y_cls):
    xa = convert(name, x)
    return {
        "J": _np(operators.input_jacobian(model, xa)),
        "G": _np(operators.param_jacobian(model, xa)),
        "K": _np(operators.ntk(model, xa)),
        "K_tr": _np(operators.ntk(model, xa, trace=True)),
        "H_mse": _np(operators.hessian(model, xa, convert(name, y_reg), "mse")),
        "H_ce": _np(operators.hessian(model, xa, convert(name, y_cls), "cross_entropy")),
        "GGN_ce": _np(operators.ggn(model, xa, convert(name, y_cls), "cross_entropy")),
    }


def test_adapters_agree(case):
    models, x, y_reg, y_cls = case
    results = {name: _dense_all(models[name], name, x, y_reg, y_cls) for name in ADAPTERS}
    for name in ("arraynet", "jax"):
        for key, ref in results["torch"].items():
            _close(results[name][key], ref, 1e-8)


@pytest.mark.parametrize("name", ADAPTERS)
def test_input_jacobian_against_finite_differences(case, name):
    models, x, _, _ = case
    m = models[name]
    jac = _np(operators.input_jacobian(m, convert(name, x)))
    flat = x.reshape(x.shape[0], -1)
    fd = np.zeros_like(jac)
    for j in range(flat.shape[1]):
        e = np.zeros_like(flat)
        e[:, j] = H
        up = _np(m.apply(convert(name, (flat + e).reshape(x.shape))))
        dn = _np(m.apply(convert(name, (flat - e).reshape(x.shape))))
        fd[:, :, j] = (up - dn) / (2 * H)
    _close(jac, fd, 1e-6)


@pytest.mark.parametrize("name", ADAPTERS)
def test_param_jacobian_and_hessian_against_finite_differences(case, name):
    models, x, _y_reg, y_cls = case
    m = models[name]
    xa = convert(name, x)
    theta = _np(m.flat_params)
    g = _np(operators.param_jacobian(m, xa))
    hess = _np(operators.hessian(m, xa, convert(name, y_cls), "cross_entropy"))
    yc = convert(name, y_cls)

    def grad_at(t):
        mt = m.with_params(convert(name, t))
        z = mt.apply(xa)
        return _np(mt.vjp_params(xa, loss_gradient(z, yc, "cross_entropy") / x.shape[0]))

    cols = np.random.default_rng(0).choice(theta.size, size=min(12, theta.size), replace=False)
    for j in cols:
        e = np.zeros_like(theta)
        e[j] = H
        up = _np(m.with_params(convert(name, theta + e)).apply(xa))
        dn = _np(m.with_params(convert(name, theta - e)).apply(xa))
        _close(g[:, :, j], (up - dn) / (2 * H), 1e-6)
        _close(hess[:, j], (grad_at(theta + e) - grad_at(theta - e)) / (2 * H), 1e-6)


@pytest.mark.parametrize("name", ADAPTERS)
def test_native_paths_match_derived(case, name):
    models, x, _, _ = case
    m = models[name]
    xa = convert(name, x)
    _close(
        _np(operators.input_jacobian(m, xa)),
        _np(operators.input_jacobian(m, xa, native=False)),
        1e-12,
    )
    _close(
        _np(operators.param_jacobian(m, xa)),
        _np(operators.param_jacobian(m, xa, native=False)),
        1e-12,
    )


@pytest.mark.parametrize("name", ADAPTERS)
def test_operators_match_dense(case, name):
    models, x, y_reg, y_cls = case
    m = models[name]
    xa, yr, yc = convert(name, x), convert(name, y_reg), convert(name, y_cls)
    pairs = [
        (operators.input_jacobian_operator(m, xa), None),
        (operators.param_jacobian_operator(m, xa), None),
        (operators.ntk_operator(m, xa), _np(operators.ntk(m, xa))),
        (operators.hessian_operator(m, xa, yr, "mse"), _np(operators.hessian(m, xa, yr, "mse"))),
        (
            operators.ggn_operator(m, xa, yc, "cross_entropy"),
            _np(operators.ggn(m, xa, yc, "cross_entropy")),
        ),
    ]
    g = _np(operators.param_jacobian(m, xa))
    n, c, p = g.shape
    pairs[1] = (pairs[1][0], g.reshape(n * c, p))
    jac = _np(operators.input_jacobian(m, xa))
    d = jac.shape[2]
    block = np.zeros((n * c, n * d))
    for i in range(n):
        block[i * c : (i + 1) * c, i * d : (i + 1) * d] = jac[i]
    pairs[0] = (pairs[0][0], block)
    rng = np.random.default_rng(1)
    for op, dense in pairs:
        v = rng.standard_normal(op.shape[1])
        _close(_np(op.matvec(convert(name, v))), dense @ v, 1e-10)
        u = rng.standard_normal(op.shape[0])
        _close(_np(op.rmatvec(convert(name, u))), dense.T @ u, 1e-10)


@pytest.mark.parametrize("name", ADAPTERS)
def test_reusing_hvp_operator_matches_hvp(case, name):
    models, x, _y_reg, y_cls = case
    m = models[name]
    xa, yc = convert(name, x), convert(name, y_cls)
    hvp = m.hvp_operator(xa, yc, "cross_entropy")
    rng = np.random.default_rng(3)
    for _ in range(3):  # the reused graph / linearisation / caches give the same products
        v = rng.standard_normal(m.num_params)
        _close(
            _np(hvp(convert(name, v))), _np(m.hvp(xa, yc, convert(name, v), "cross_entropy")), 1e-10
        )


@pytest.mark.parametrize("trace", [False, True], ids=["full", "trace"])
def test_ntk_of_a_large_batch_is_the_blocked_gram(xp_eager, trace):
    """``N = 521`` samples (``N·C = 2605`` rows) take the blocked upper-triangle Gram (8 uneven
    row blocks), for the full and the trace NTK.

    Reference: ``G Gᵀ`` (or ``Σ_a G_a G_aᵀ``) of the dense parameter Jacobian in float64 NumPy.
    """
    from specinterp.adapters import arraynet as an

    net = an.init_mlp([4, 6, 5], an.Tanh(), seed=4, xp=xp_eager.xp, dtype=xp_eager.dtype)
    x = xp_eager.asarray(np.random.default_rng(5).standard_normal((521, 4)))
    g = xp_eager.to_numpy(operators.param_jacobian(net, x))
    expected = (
        sum(g[:, a, :] @ g[:, a, :].T for a in range(5))
        if trace
        else g.reshape(2605, -1) @ g.reshape(2605, -1).T
    )
    got = xp_eager.to_numpy(operators.ntk(net, x, trace=trace))
    np.testing.assert_allclose(got, expected, rtol=xp_eager.rtol, atol=xp_eager.rtol * 10)
    np.testing.assert_array_equal(got, got.T)


@pytest.mark.parametrize("name", ADAPTERS)
def test_input_jacobian_with_fewer_inputs_than_outputs_takes_columns(name):
    # d = 2 < C = 9: the native paths push d tangents forward (jacfwd) and the derived one
    # takes d JVPs instead of C VJPs; both against central finite differences
    import torch

    torch.manual_seed(3)
    tnet = torch.nn.Sequential(
        torch.nn.Linear(2, 7), torch.nn.Tanh(), torch.nn.Linear(7, 9)
    ).double()
    m = three_models(tnet)[name]
    x = np.random.default_rng(2).standard_normal((4, 2))
    fd = np.zeros((4, 9, 2))
    for j in range(2):
        e = np.zeros_like(x)
        e[:, j] = H
        up, dn = _np(m.apply(convert(name, x + e))), _np(m.apply(convert(name, x - e)))
        fd[:, :, j] = (up - dn) / (2 * H)
    _close(_np(operators.input_jacobian(m, convert(name, x))), fd, 1e-6)
    _close(_np(operators.input_jacobian(m, convert(name, x), native=False)), fd, 1e-6)
