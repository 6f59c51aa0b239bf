"""The named model-level operators: what they are built from, their structure, and their
products against the dense matrices (float64, arraynet and torch)."""

from __future__ import annotations

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

import specinterp as si
from specinterp.model_operators import (
    GGNOperator,
    HessianOperator,
    InputJacobianOperator,
    NTKOperator,
    ParamJacobianOperator,
)


@pytest.fixture
def problem(rng):
    net = an.init_mlp([5, 7, 3], an.Tanh(), seed=1)
    x = rng.standard_normal((4, 5))
    y = np.array([0, 2, 1, 2])
    return si.as_model(net), x, y


def test_named_operators_and_their_structure(problem):
    model, x, y = problem
    jop = si.input_jacobian_operator(model, x)
    gop = si.param_jacobian_operator(model, x)
    kop = si.ntk_operator(model, x)
    hop = si.hessian_operator(model, x, y, "cross_entropy")
    ggn = si.ggn_operator(model, x, y, "cross_entropy")
    assert isinstance(jop, InputJacobianOperator) and jop.shape == (12, 20)
    assert (jop.num_samples, jop.num_outputs, jop.input_size) == (4, 3, 5)
    assert isinstance(gop, ParamJacobianOperator) and gop.shape == (12, model.num_params)
    assert isinstance(kop, NTKOperator) and kop.positive_semidefinite
    assert isinstance(hop, HessianOperator) and hop.symmetric and not hop.positive_semidefinite
    assert isinstance(ggn, GGNOperator) and ggn.positive_semidefinite
    assert ggn.model is model and ggn.x is x and ggn.loss.name == "cross_entropy"


def test_products_equal_the_dense_matrices(problem, rng):
    model, x, y = problem
    p = model.num_params
    dense = {
        "J": np.asarray(si.input_jacobian(model, x)),  # (N, C, d), block-diagonal operator
        "G": np.asarray(si.param_jacobian(model, x)).reshape(12, p),
        "K": np.asarray(si.ntk(model, x)),
        "H": np.asarray(si.hessian(model, x, y, "cross_entropy")),
        "GGN": np.asarray(si.ggn(model, x, y, "cross_entropy")),
    }
    v = rng.standard_normal(p)
    u = rng.standard_normal(12)
    gop = si.param_jacobian_operator(model, x)
    np.testing.assert_allclose(gop @ v, dense["G"] @ v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gop.T @ u, dense["G"].T @ u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(si.ntk_operator(model, x) @ u, dense["K"] @ u, rtol=1e-10)
    hop = si.hessian_operator(model, x, y, "cross_entropy")
    np.testing.assert_allclose(hop @ v, dense["H"] @ v, rtol=1e-9, atol=1e-12)
    ggn = si.ggn_operator(model, x, y, "cross_entropy")
    np.testing.assert_allclose(ggn @ v, dense["GGN"] @ v, rtol=1e-9, atol=1e-12)
    w = rng.standard_normal(20)
    blocks = np.einsum("ncd,nd->nc", dense["J"], w.reshape(4, 5)).reshape(12)
    np.testing.assert_allclose(si.input_jacobian_operator(model, x) @ w, blocks, rtol=1e-10)


def test_composed_gram_of_g_is_the_ntk_and_psd(problem, rng):
    # T5: G Gᵀ = K as operators, and the composition knows it is symmetric PSD
    model, x, _ = problem
    gop = si.param_jacobian_operator(model, x)
    k_composed = gop @ gop.T
    assert k_composed.positive_semidefinite
    u = rng.standard_normal(12)
    np.testing.assert_allclose(k_composed @ u, si.ntk_operator(model, x) @ u, rtol=1e-10)
    # eigsh takes the composition: its top eigenvalue is σ_1(G)²
    top = si.linalg.eigsh(gop.T @ gop, 1, seed=0).values[0]
    s1 = np.linalg.svd(np.asarray(si.param_jacobian(model, x)).reshape(12, -1), compute_uv=False)[0]
    assert top == pytest.approx(s1**2, rel=1e-9)


def test_ggn_of_a_user_loss_does_not_claim_psd(problem):
    # a callable loss may be non-convex: Λ_i is not known to be PSD, so neither is the GGN
    _, x, _ = problem
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(5, 3)).double()
    xt, yt = torch.as_tensor(x), torch.zeros(4, 3, dtype=torch.float64)

    def wavy_t(z, t):
        return torch.sin(z - t).sum(dim=1)

    op = si.ggn_operator(net, xt, yt, wavy_t)
    assert op.symmetric and not op.positive_semidefinite
    assert si.ggn_operator(net, xt, yt, "mse").positive_semidefinite
