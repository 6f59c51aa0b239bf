"""The GMSI's routes: dense NTK whatever p, SLQ entropy with a stated error, progress output."""

from __future__ import annotations

import copy
import re
import time

import numpy as np
import pytest
import torch

import specinterp as si
from specinterp import _progress
from specinterp.entropy_estimates import entropy_from_values, slq_entropy
from specinterp.linalg import LinearOperator, slq_nodes

from .nets import tanh_mlp


def _diag_operator(lam: np.ndarray) -> LinearOperator:
    return LinearOperator((lam.size, lam.size), lambda v: lam * v, symmetric=True)


def _rotated(lam: np.ndarray, seed: int = 0) -> LinearOperator:
    """``Q diag(λ) Qᵀ`` with a random orthogonal ``Q`` (a diagonal operator gives every
    Rademacher probe the same spectral measure, so it would show no spread)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((lam.size, lam.size)))
    a = (q * lam) @ q.T
    return LinearOperator(a.shape, lambda v: a @ v, symmetric=True)


@pytest.mark.parametrize("steps", [10, 40])
def test_slq_entropy_is_within_its_stated_error_of_the_exact_entropy(steps):
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.uniform(-0.2, 1.0, 1200), [40.0, 25.0, 9.0]])
    exact = entropy_from_values(lam)
    op = _rotated(lam)
    est = slq_entropy(op, num_probes=8, num_steps=steps, seed=1)
    assert est.num_probes == 8 and est.num_matvecs == 8 * steps
    assert 0 < est.stderr < 0.2 and est.quadrature > 0
    assert abs(est.value - exact) < 3 * est.error
    # a short rule's bias is what the quadrature term is for: it shrinks with the steps
    if steps == 10:
        assert est.quadrature > slq_entropy(op, num_probes=8, num_steps=40, seed=1).quadrature
    # the same probes as slq_nodes: T from its rules equals tr|A| estimated there
    nodes, weights, _ = slq_nodes(op, num_probes=8, num_steps=steps, seed=1)
    t = lam.size * np.mean(np.sum(weights * np.abs(nodes), axis=1))
    s = lam.size * np.mean(np.sum(weights * np.abs(nodes) * np.log(np.abs(nodes)), axis=1))
    assert est.value == pytest.approx(np.log(t) - s / t, rel=1e-12)


def test_slq_entropy_with_the_exact_trace_and_of_the_zero_matrix():
    lam = np.linspace(0.01, 2.0, 500)
    est = slq_entropy(_rotated(lam), num_probes=4, num_steps=40, trace_abs=lam.sum())
    assert abs(est.value - entropy_from_values(lam)) < 3 * est.error
    zero = slq_entropy(_diag_operator(np.zeros(50)), num_probes=2, num_steps=5)
    assert np.isnan(zero.value)


def test_counting_operator_counts_products_and_estimates_time(capsys, monkeypatch):
    lam = np.arange(1.0, 101.0)
    op, bar = _progress.counting(_diag_operator(lam), "demo", 30, enabled=True)
    monkeypatch.setattr(_progress, "ESTIMATE_AFTER", -1.0)  # announce any run
    v = np.ones(100)
    np.testing.assert_array_equal(op.matvec(v), lam)
    np.testing.assert_array_equal(op.matmat(np.ones((100, 3))), np.repeat(lam[:, None], 3, 1))
    bar.close()
    assert bar.count == 4
    assert "demo: about 30 products" in capsys.readouterr().err
    # a run of unknown length with a typical range: the range and the times it implies
    run, run_bar = _progress.counting(_diag_operator(lam), "run", None, typical=(40, 200))
    run.matvec(v)
    run_bar.close()
    per = time.perf_counter() - run_bar.started  # bounds the one product's time
    err = capsys.readouterr().err
    match = re.search(
        r"run: about 40–200 \(typically\) products at ([0-9.e-]+) s each, ≈ (\d+)–(\d+) s", err
    )
    assert match, err
    each = float(match.group(1))
    assert 0 < each <= per and int(match.group(3)) <= round(200 * per) + 1
    quiet, quiet_bar = _progress.counting(_diag_operator(lam), "demo", 30, enabled=False)
    quiet.matvec(v)
    quiet_bar.advance(1)
    assert capsys.readouterr().err == ""


def test_counting_keeps_a_hessians_compression():
    """A counted Hessian of an MLP with fewer samples than inputs keeps its compression: ``eigsh``
    and the SLQ entropy through the bar run every product on it, the bar counts them, and the
    answers are the dense Hessian's (its eigenvalues; its exact entropy within 3 stated errors)."""
    net = tanh_mlp(20, 16, 3).double()
    x = torch.randn(6, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (6,), generator=torch.Generator().manual_seed(1))
    op = si.hessian_operator(net, x, y, "cross_entropy")
    small = op.compression().operator
    calls, product = [], small._matvec
    small._matvec = lambda v: calls.append(1) or product(v)
    lam = np.linalg.eigvalsh(si.hessian(net, x, y, "cross_entropy").numpy())
    wrapped, bar = _progress.counting(op, "demo", enabled=True)
    res = si.linalg.eigsh(wrapped, 3, tol=1e-10)
    bar.close()
    assert len(calls) == res.num_matvecs == bar.count > 0
    np.testing.assert_allclose(res.values.numpy(), lam[::-1][:3], rtol=1e-8)
    calls.clear()
    with _progress.counted(op, "entropy", enabled=True) as counted_op:
        est = slq_entropy(counted_op, num_probes=40, num_steps=30, seed=2)
    assert len(calls) == est.num_matvecs > 0
    assert abs(est.value - entropy_from_values(lam)) < 3 * est.error


def test_gmsi_forms_a_small_ntk_densely_whatever_p_and_is_silent_without_progress(capsys):
    net = tanh_mlp(20, 64, 3).double()
    x = torch.randn(8, 20, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    free = si.gmsi(net, x, y, method="matrix-free", progress=False, num_probes=6)
    dense = si.gmsi(net, x, y, method="dense", progress=False)
    assert free.details["ntk"] == "dense (structured)"
    assert free.value == pytest.approx(dense.value, rel=1e-10)
    assert free.ntk_condition_number == pytest.approx(dense.ntk_condition_number, rel=1e-8)
    assert free.components["curvature"] == pytest.approx(dense.components["curvature"], rel=1e-7)
    err = free.details["entropy_error"]["hessian"]
    assert abs(free.entropies["hessian"] - dense.entropies["hessian"]) < 3 * err
    assert dense.details["entropy_error"] == {"ntk": 0.0, "hessian": 0.0, "jacobian": 0.0}
    assert capsys.readouterr().err == ""


def test_hessian_condition_number_says_over_which_eigenvalues_it_is_taken():
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()
    x = torch.randn(10, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    lam = np.linalg.eigvalsh(si.operators.hessian(net, x, y, "cross_entropy").numpy())
    pos = lam[lam > lam.max() * lam.size * np.finfo(float).eps]
    top = np.sort(lam)[::-1][:6]
    assert np.all(top > 0)
    dense = si.gmsi(net, x, y, method="dense", progress=False)
    free = si.gmsi(net, x, y, method="matrix-free", progress=False, tol=1e-10)
    assert dense.hessian_condition_number == pytest.approx(pos.max() / pos.min(), rel=1e-8)
    assert free.hessian_condition_number == pytest.approx(top[0] / top[-1], rel=1e-6)
    assert free.hessian_condition_number < dense.hessian_condition_number
    assert dense.details["hessian_condition_over"].startswith(f"all {pos.size} eigenvalues")
    assert "lower bound" in free.details["hessian_condition_over"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["outliers", "flat"])
def test_partial_reorthogonalisation_keeps_the_gauss_rules_within_the_stated_distance(
    dtype, kind, monkeypatch
):
    from scipy.stats import wasserstein_distance

    import specinterp.linalg.tridiagonal as tridiagonal

    rng = np.random.default_rng(11)
    if kind == "outliers":  # the Hessian-like case: orthogonality is lost fast
        lam = np.concatenate([rng.normal(0, 0.01, 8000), rng.uniform(0, 1, 200), [8, 5, 3]])
    else:
        lam = rng.uniform(-1, 2, 8000)
    lam = lam.astype(dtype)
    op = LinearOperator((lam.size, lam.size), lambda v: lam * v, symmetric=True, dtype=dtype)
    passes = [0]
    real = tridiagonal.project_out

    def counted(*args):
        passes[0] += 1
        return real(*args)

    monkeypatch.setattr(tridiagonal, "project_out", counted)
    rules = {}
    for mode in ("full", "partial"):
        passes[0] = 0
        nodes, weights, _ = slq_nodes(op, num_probes=3, num_steps=60, seed=2, reorthogonalize=mode)
        rules[mode] = (nodes, weights, passes[0])
    eps = np.finfo(dtype).eps
    for p in range(3):
        w1 = wasserstein_distance(
            rules["full"][0][p], rules["partial"][0][p], rules["full"][1][p], rules["partial"][1][p]
        )
        assert w1 <= np.sqrt(eps) * np.abs(lam).max()
    # the saving: full passes only where the estimate asks (never on the flat spectrum)
    assert rules["partial"][2] < rules["full"][2] / 2
    if kind == "flat":
        assert rules["partial"][2] == 0
    # the converged outlier appears once: no spurious copy (the sign of lost orthogonality)
    assert np.sum(np.isclose(rules["partial"][0][0], 8.0, rtol=1e-3)) == 1 or kind == "flat"


@pytest.mark.parametrize("route", ["structured", "native Jacobian", "per-sample operators"])
def test_per_sample_ntk_blocks_equal_the_diagonal_of_the_full_ntk(monkeypatch, route):
    from specinterp import stability_index_routes as routes
    from specinterp.errors import MemoryBudgetError

    torch.manual_seed(0)
    if route == "native Jacobian":
        net = torch.nn.Sequential(
            torch.nn.Conv2d(2, 3, 3, padding=1),
            torch.nn.Tanh(),
            torch.nn.Flatten(),
            torch.nn.Linear(3 * 5 * 5, 3),
        ).double()
        x = torch.randn(7, 2, 5, 5, dtype=torch.float64)
    else:
        net = torch.nn.Sequential(
            torch.nn.Linear(6, 9), torch.nn.Tanh(), torch.nn.Linear(9, 3)
        ).double()
        x = torch.randn(7, 6, dtype=torch.float64)
    model = si.as_model(net)
    full, path = si.ntk(model, x, return_path=True)  # the independent reference
    k = full.numpy().reshape(7, 3, 7, 3)
    want = np.stack([np.linalg.eigvalsh(k[i, :, i, :]) for i in range(7)])
    monkeypatch.setattr(routes, "BLOCK_CHUNK_ENTRIES", 36)  # chunks of 2 samples: 2, 2, 2, 1
    if route == "per-sample operators":

        def refuse(*a, **kw):
            raise MemoryBudgetError("too big")

        monkeypatch.setattr(routes, "ntk", refuse)
    else:
        assert path == route
    got = routes.block_eigenvalues(model, x, 7, 3)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_gmsi_float32_ntk_condition_above_the_dense_limit_equals_the_float64_dense_one():
    net = tanh_mlp(6, 32, 3)
    x = torch.randn(20, 6)
    y = torch.randint(0, 3, (20,))
    free = si.gmsi(net, x, y, method="matrix-free", dense_limit=50, progress=False)
    _, bottom = free.details["ntk"]  # the Lanczos runs: N·C = 60 > dense_limit
    exact = si.ntk(copy.deepcopy(net).double(), x.double()).numpy()  # the float64 truth
    lam = np.linalg.eigvalsh(exact)
    kappa = lam[-1] / lam[0]
    eps = float(np.finfo(np.float32).eps)
    assert kappa < 0.1 / (np.sqrt(60) * eps)  # well inside what float32 resolves
    assert bottom.converged
    # float32 products resolve λ_min to about eps · λ_max: κ to about κ · eps relative
    assert free.ntk_condition_number == pytest.approx(kappa, rel=4 * kappa * eps)


def test_gmsi_float32_ntk_singular_in_its_precision_stops_the_bottom_run_early():
    # each sample twice: K has 60 exact zero eigenvalues, which float32 products see as rounding
    net = tanh_mlp(6, 32, 3)
    x = torch.randn(20, 6).repeat(2, 1)
    y = torch.randint(0, 3, (40,))
    free = si.gmsi(net, x, y, method="matrix-free", dense_limit=50, progress=False)
    top, bottom = free.details["ntk"]
    lam = np.linalg.eigvalsh(si.ntk(copy.deepcopy(net).double(), x.double()).numpy())
    assert lam[0] <= 1e-12 * lam[-1]  # singular in float64 too
    level = np.sqrt(120) * np.finfo(np.float32).eps * float(top.values[0])
    assert free.ntk_condition_number == np.inf
    assert float(bottom.values[0]) <= level and not bottom.converged
    # without the level the same run resolves rounding noise at the bottom for far longer
    kop = si.ntk_operator(si.as_model(net), x)
    resolved = si.linalg.eigsh(kop, 1, which="SA", ncv=80, tol=float(np.sqrt(2**-23)))
    assert bottom.num_matvecs < resolved.num_matvecs


def test_gmsi_ntk_of_rank_at_most_p_below_n_c_is_singular_without_a_bottom_run():
    net = tanh_mlp(4, 3, 2).double()  # p = 23 < N·C = 40
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (20,))
    free = si.gmsi(net, x, y, method="matrix-free", dense_limit=10, progress=False)
    lam = np.linalg.eigvalsh(si.ntk(net, x).numpy())
    assert np.sum(lam > 1e-10 * lam[-1]) <= 23  # the rank the shortcut relies on
    assert free.ntk_condition_number == np.inf
    assert "rank K ≤ p = 23 < N·C = 40" in free.details["ntk"][1]


def test_many_outputs_per_sample_take_per_sample_lanczos_and_an_estimated_trace(monkeypatch):
    from specinterp import stability_index_routes as routes

    net = tanh_mlp(5, 16, 4).double()
    x = torch.randn(12, 5, dtype=torch.float64)
    y = torch.randint(0, 4, (12,))
    opts = dict(method="matrix-free", dense_limit=20, progress=False, tol=1e-10, num_probes=8)
    exact = si.gmsi(net, x, y, **opts)  # C = 4: dense per-sample blocks, exact trace
    monkeypatch.setattr(routes, "DENSE_BLOCK_MAX_C", 3)  # as if C were a language model's
    blocks = routes.block_eigenvalues(si.as_model(net), x, 12, 4)
    est = si.gmsi(net, x, y, **opts)
    k = si.ntk(net, x).numpy()  # the independent reference
    tops = [np.linalg.eigvalsh(k[4 * i : 4 * i + 4, 4 * i : 4 * i + 4])[-1] for i in range(12)]
    assert exact.components["parameter"] == pytest.approx(np.sqrt(max(tops)), rel=1e-10)
    assert est.components["parameter"] == pytest.approx(np.sqrt(max(tops)), rel=1e-8)
    np.testing.assert_allclose(blocks[:, -1], tops, rtol=1e-10)
    assert exact.details["ntk_trace_error"] == 0.0
    err = est.details["ntk_trace_error"]
    assert err > 0
    # typical["ntk"] = (tr K / (N · N C))^½: the estimated trace within 3 standard errors
    t_est = est.typical["ntk"] ** 2 * 12 * 48
    assert abs(t_est - np.trace(k)) < 3 * err
    assert exact.typical["ntk"] ** 2 * 12 * 48 == pytest.approx(np.trace(k), rel=1e-10)


def test_slq_entropy_reports_the_trace_it_used():
    lam = np.linspace(0.01, 2.0, 500)
    op = _rotated(lam)
    est = slq_entropy(op, num_probes=16, num_steps=20, seed=3)
    assert 0 < est.trace_stderr < 0.1 * lam.sum()
    assert abs(est.trace_abs - lam.sum()) < 3 * est.trace_stderr
    given = slq_entropy(op, num_probes=4, num_steps=20, trace_abs=lam.sum())
    assert given.trace_abs == lam.sum() and given.trace_stderr == 0.0


def test_a_long_derived_input_jacobian_announces_its_time(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "ESTIMATE_AFTER", -1.0)  # announce any run
    net = tanh_mlp(2, 5, 9).double()  # d = 2 < C = 9: two forward products
    x = torch.randn(3, 2, dtype=torch.float64)
    jac = si.input_jacobian(net, x, native=False)
    ref = torch.func.vmap(torch.func.jacrev(net))(x)  # independent: torch.func's own Jacobian
    torch.testing.assert_close(jac, ref, rtol=1e-12, atol=1e-12)
    assert "input Jacobian: 2 forward products: about 2 products" in capsys.readouterr().err
