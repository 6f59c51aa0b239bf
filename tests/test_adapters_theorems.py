"""Theory T3–T7 as property tests on random networks, and the closed forms of T7."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from specinterp.adapters import arraynet as an

import specinterp as si
from specinterp import bounds, operators
from specinterp.losses import output_hessian
from specinterp.testing.strategies import arraynet_mlps

TOL = 1e-9


def _model(case):
    return si.as_model(case.net)


@given(case=arraynet_mlps())
def test_t3_layer_product_bound(case):
    m = _model(case)
    fac = m.layer_factors(case.x)
    jac = operators.input_jacobian(m, case.x)
    acts = [lay for lay in case.net.layers if isinstance(lay, an.Activation)]
    ineq = bounds.layer_product_bound(jac, fac.weights, fac.diagonals, [a.lipschitz for a in acts])
    assert ineq.holds(rtol=TOL, atol=1e-12)
    # the product form reproduces the Jacobian computed by backprop
    np.testing.assert_allclose(
        jac, operators.input_jacobian(m, case.x, native=False), rtol=1e-10, atol=1e-12
    )


@given(case=arraynet_mlps(activations=("relu", "leaky_relu")), data=st.data())
def test_t4_certified_radius(case, data):
    m = _model(case)
    x = case.x
    rho = si.certified_radius(m, x)
    jac = operators.input_jacobian(m, x)
    rng = np.random.default_rng(case.seed)
    fac = m.layer_factors(x)
    for i in range(x.shape[0]):
        if not np.isfinite(rho[i]) or rho[i] == 0:
            continue
        for _ in range(5):  # inside the ball the Jacobian is exactly constant
            d = rng.standard_normal(x.shape[1])
            d *= 0.99 * rho[i] * rng.uniform() ** (1 / x.shape[1]) / np.linalg.norm(d)
            inside = operators.input_jacobian(m, (x[i] + d)[None])[0]
            np.testing.assert_allclose(inside, jac[i], rtol=1e-9, atol=1e-12)
        # just outside, along the critical neuron's gradient, the region changes
        partial = fac.weights[0]
        best = (np.inf, None, None)
        for layer, z in enumerate(fac.preactivations):
            norms = np.linalg.norm(partial, axis=1)
            for j in np.flatnonzero(norms > 0):
                r = abs(z[i, j]) / norms[j]
                if r < best[0]:
                    best = (r, layer, partial[j] * -np.sign(z[i, j]) / norms[j])
            partial = fac.weights[layer + 1] @ (fac.diagonals[layer][i][:, None] * partial)
        assert best[0] == pytest.approx(rho[i], rel=1e-12)
        outside = (x[i] + 1.01 * rho[i] * best[2])[None]
        crossed = [np.sign(z[0]) for z in m.preactivations(outside)]
        before = [np.sign(z[i]) for z in fac.preactivations]
        assert any(np.any(a != b) for a, b in zip(crossed, before, strict=True))


@given(case=arraynet_mlps())
def test_t5_ntk_and_parameter_jacobian(case):
    m = _model(case)
    g = operators.param_jacobian(m, case.x)
    n, c, p = g.shape
    k = operators.ntk(m, case.x)
    big = g.reshape(n * c, p)
    lam = np.sort(np.linalg.eigvalsh(k))[::-1]
    s2 = np.sort(np.linalg.svd(big, compute_uv=False) ** 2)[::-1]
    r = min(lam.size, s2.size)
    np.testing.assert_allclose(lam[:r], s2[:r], rtol=1e-9, atol=1e-9 * max(lam[0], 1e-300))
    assert np.trace(k) == pytest.approx(np.sum(big**2), rel=1e-10)
    assert np.trace(k) == pytest.approx(sum(np.sum(g[i] ** 2) for i in range(n)), rel=1e-10)
    if np.sum(big**2) > 1e-20:
        assert float(si.spectral_entropy(k, hermitian=True)) == pytest.approx(
            float(si.spectral_entropy(big)), rel=1e-7, abs=1e-9
        )


@given(case=arraynet_mlps())
def test_t6_ntk_scale(case):
    m = _model(case)
    g = operators.param_jacobian(m, case.x)
    n, c, _ = g.shape
    lam_max = np.linalg.eigvalsh(operators.ntk(m, case.x))[-1]
    s1 = np.array([np.linalg.svd(g[i], compute_uv=False)[0] for i in range(n)])
    chain = [np.max(s1**2), lam_max, np.sum(s1**2), n * np.max(s1**2)]
    assert all(a <= b * (1 + TOL) + 1e-12 for a, b in itertools.pairwise(chain))
    k_tr = operators.ntk(m, case.x, trace=True)
    assert np.linalg.eigvalsh(k_tr)[-1] <= c * lam_max * (1 + TOL) + 1e-12


@given(case=arraynet_mlps())
def test_t7_gauss_newton_curvature(case):
    m = _model(case)
    x = case.x
    n = x.shape[0]
    c = int(m.apply(x).shape[1])
    y = np.random.default_rng(case.seed).integers(0, c, size=n)
    ggn = operators.ggn(m, x, y, "cross_entropy")
    lam = np.linalg.eigvalsh(ggn)
    scale = max(abs(lam).max(), 1e-300)
    assert lam[0] >= -1e-10 * scale  # convex loss: GGN ⪰ 0
    beta = max(np.linalg.eigvalsh(L)[-1] for L in output_hessian(m.apply(x), y, "cross_entropy"))
    k_max = np.linalg.eigvalsh(operators.ntk(m, x))[-1]
    assert lam[-1] <= beta * k_max / n * (1 + TOL) + 1e-12
    # MSE at an interpolating point: H = GGN exactly
    z = m.apply(x)
    np.testing.assert_allclose(
        operators.hessian(m, x, z, "mse"),
        operators.ggn(m, x, z, "mse"),
        rtol=1e-9,
        atol=1e-10 * max(np.abs(ggn).max(), 1.0),
    )


def _linear(w):
    return si.as_model(an.Sequential([an.Dense(w)]))


def test_t7_linear_regression_hessian_closed_form(rng):
    n, d, c = 9, 4, 3
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, c))
    m = _linear(rng.standard_normal((c, d)))
    expected = np.kron(np.eye(c), x.T @ x / n)  # ℓ = ½‖z − y‖², W flattened row-major
    np.testing.assert_allclose(operators.hessian(m, x, y, "mse"), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(operators.ggn(m, x, y, "mse"), expected, rtol=1e-12, atol=1e-14)


def test_t7_softmax_regression_hessian_closed_form(rng):
    n, d, c = 7, 3, 4
    x = rng.standard_normal((n, d))
    w = rng.standard_normal((c, d))
    y = rng.integers(0, c, size=n)
    m = _linear(w)
    z = x @ w.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = (
        sum(np.kron(np.diag(p[i]) - np.outer(p[i], p[i]), np.outer(x[i], x[i])) for i in range(n))
        / n
    )
    np.testing.assert_allclose(
        operators.hessian(m, x, y, "cross_entropy"), expected, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        operators.ggn(m, x, y, "cross_entropy"), expected, rtol=1e-12, atol=1e-14
    )


def test_activation_lipschitz_constants():
    z = np.linspace(-20, 20, 400_001)
    for act in (
        an.ReLU(),
        an.LeakyReLU(0.3),
        an.LeakyReLU(2.0),
        an.Tanh(),
        an.Sigmoid(),
        an.Softplus(3.0),
        an.GELU(),
    ):
        sup = np.max(np.abs(act.df(z)))
        assert sup <= act.lipschitz
        if not isinstance(act, an.Softplus):
            assert sup >= act.lipschitz - 1e-3 * max(1.0, act.lipschitz)
    assert math.isclose(an.Softplus(3.0).lipschitz, 1.0)


def test_activation_derivatives_against_finite_differences():
    z = np.linspace(-4, 4, 81) + 1e-3  # avoid the kinks at 0
    h = 1e-5
    for act in (an.Tanh(), an.Sigmoid(), an.Softplus(2.0), an.GELU(), an.LeakyReLU(0.2)):
        np.testing.assert_allclose(
            act.df(z), (act.f(z + h) - act.f(z - h)) / (2 * h), rtol=1e-7, atol=1e-9
        )
        np.testing.assert_allclose(
            act.d2f(z), (act.df(z + h) - act.df(z - h)) / (2 * h), rtol=1e-6, atol=1e-8
        )
