"""Per-sample input-Jacobian statistics without the Jacobians (the GMSI of large models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specinterp as si
from specinterp import stability_index_routes as routes
from specinterp.errors import MemoryBudgetError
from specinterp.jacobian_estimates import batched_lanczos, jacobian_estimate
from specinterp.linalg import aslinearoperator, lanczos_tridiagonal

from .nets import tanh_mlp


def test_batched_lanczos_runs_each_block_as_its_own_lanczos():
    rng = np.random.default_rng(0)
    d = 12
    blocks = []
    for rank in (12, 12, 3):  # the last block's Krylov space is invariant after 3 steps
        g = rng.standard_normal((rank, d))
        blocks.append(g.T @ g)
    blocks = np.stack(blocks)
    start = rng.standard_normal((3, d))
    alpha, beta, used = batched_lanczos(lambda v: np.einsum("nij,nj->ni", blocks, v), start, 8)
    assert used.tolist() == [8, 8, 4]  # 3 nonzero eigenvalues + the null space: 4 steps
    for i in range(3):
        a, b, _ = lanczos_tridiagonal(aslinearoperator(blocks[i]), start[i], 8)
        s = int(used[i])
        np.testing.assert_allclose(alpha[i, :s], a[:s], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(beta[i, : s - 1], b[: s - 1], rtol=1e-9, atol=1e-9)
    # the invariant block's Gauss rule is exact: it integrates x ↦ x² of its measure
    t = np.diag(alpha[2, :4]) + np.diag(beta[2, :3], 1) + np.diag(beta[2, :3], -1)
    theta, y = np.linalg.eigh(t)
    q = start[2] / np.linalg.norm(start[2])
    assert np.sum(y[0] ** 2 * theta**2) == pytest.approx(q @ blocks[2] @ blocks[2] @ q, rel=1e-9)


def _net_and_inputs():
    net = tanh_mlp(8, 24, 20).double()
    return net, torch.randn(6, 8, dtype=torch.float64)


def test_jacobian_estimate_matches_the_dense_spectra_within_its_stated_errors():
    net, x = _net_and_inputs()
    model = si.as_model(net)
    js = si.jacobian_spectra(model, x)  # the dense reference: (6, 20, 8) Jacobians
    est = jacobian_estimate(model, x, tol=1e-10, seed=0, num_probes=30, num_steps=8, progress=False)
    assert est.s_j == pytest.approx(float(js.operator_norm.max()), rel=1e-9)
    # d = 8 steps span each sample's space: each probe's rule is exact, only the probes vary
    assert abs(est.entropy - float(js.entropy.mean())) < 3 * est.entropy_error
    assert 0 < est.entropy_error < 0.05
    # t_J: Hutchinson's zᵀ J_iᵀJ_i z with Rademacher z has variance 2 Σ_{j≠k} (J_iᵀJ_i)_jk²
    jac = si.input_jacobian(model, x).numpy()
    grams = np.einsum("ncj,nck->njk", jac, jac)
    traces = np.trace(grams, axis1=1, axis2=2)
    var = 2 * (np.sum(grams**2, axis=(1, 2)) - np.sum(np.diagonal(grams, 0, 1, 2) ** 2, axis=1))
    sd_t = np.sqrt(var / 30) / (2 * np.sqrt(traces * 8))  # delta method for √(tr/d)
    assert abs(est.t_j - float(js.typical_gain.mean())) < 4 * np.sqrt(np.sum(sd_t**2)) / 6
    assert est.num_products > 30 * 8


def test_gmsi_takes_the_matrix_free_jacobian_route_when_the_jacobians_do_not_fit(monkeypatch):
    net, x = _net_and_inputs()
    y = torch.randint(0, 20, (6,))
    dense = si.gmsi(net, x, y, progress=False, tol=1e-10)

    def too_big(*a, **kw):
        raise MemoryBudgetError("the dense input Jacobian does not fit")

    monkeypatch.setattr(routes, "jacobian_spectra", too_big)
    free = si.gmsi(net, x, y, progress=False, tol=1e-10, num_probes=20)
    assert free.components["forward"] == pytest.approx(dense.components["forward"], rel=1e-9)
    err = free.details["entropy_error"]["jacobian"]
    assert dense.details["entropy_error"]["jacobian"] == 0.0 and err > 0
    assert abs(free.entropies["jacobian"] - dense.entropies["jacobian"]) < 3 * err
    assert free.typical["forward"] == pytest.approx(dense.typical["forward"], rel=0.2)
    # with no room for the matrix-free route (a caller without options) the error stands
    with pytest.raises(MemoryBudgetError):
        routes.jacobian_part(si.as_model(net), x, None)


@pytest.mark.parametrize("name", ["torch", "arraynet", "jax"])
def test_jacobian_estimate_on_every_adapter(name):
    from .nets import convert, three_models, torch_mlp

    model = three_models(torch_mlp(2))[name]  # 5 → … → 3, float64
    x = convert(name, np.random.default_rng(4).standard_normal((5, 5)))
    js = si.jacobian_spectra(model, x)
    est = jacobian_estimate(model, x, tol=1e-10, seed=1, num_probes=20, num_steps=5, progress=False)
    assert est.s_j == pytest.approx(float(np.max(np.asarray(js.operator_norm))), rel=1e-9)
    assert abs(est.entropy - float(np.mean(np.asarray(js.entropy)))) < 3 * est.entropy_error


@pytest.mark.parametrize("method", ["dense", "matrix-free"])
def test_gmsi_over_data_with_many_outputs_per_sample(monkeypatch, method):
    # above DENSE_BLOCK_MAX_C outputs per sample the data path no longer forms C × C blocks
    # from C products each: s_θ by Lanczos per sample, tr K from the Gram (dense: exact) or the
    # SLQ probes (matrix-free: within 3 standard errors)
    net = tanh_mlp(5, 12, 4, seed=1).double()
    x = torch.randn(9, 5, dtype=torch.float64)
    y = torch.randint(0, 4, (9,))
    data = [(x[:4], y[:4]), (x[4:], y[4:])]
    opts = dict(method=method, progress=False, tol=1e-10, num_probes=12, num_steps=12)
    exact = si.gmsi(net, data=data, **opts)
    monkeypatch.setattr(routes, "DENSE_BLOCK_MAX_C", 3)
    large = si.gmsi(net, data=data, **opts)
    k = si.ntk(net, x).numpy()  # the independent reference
    tops = [np.linalg.eigvalsh(k[4 * i : 4 * i + 4, 4 * i : 4 * i + 4])[-1] for i in range(9)]
    assert large.components["parameter"] == pytest.approx(np.sqrt(max(tops)), rel=1e-8)
    assert exact.components["parameter"] == pytest.approx(np.sqrt(max(tops)), rel=1e-10)
    t_large = large.typical["ntk"] ** 2 * 9 * 36
    err = large.details["ntk_trace_error"]
    if method == "dense":
        assert err == 0.0 and t_large == pytest.approx(np.trace(k), rel=1e-10)
    else:
        assert err > 0 and abs(t_large - np.trace(k)) < 3 * err
    assert exact.details["ntk_trace_error"] == 0.0
