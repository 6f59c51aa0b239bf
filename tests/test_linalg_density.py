"""Stochastic Lanczos quadrature against known spectra.

Stated accuracy (Chen, Trogdon & Ubaru 2021): the SLQ measure is within Wasserstein-1 distance
O(spread / num_steps) + O(spread / √(n · num_probes)) of the eigenvalue distribution; with
spread 4, 60 steps, n = 2000 and 8 probes that is ≲ 0.07 + 0.03; the Gaussian smoothing adds at
most σ√(2/π) ≈ 0.03. The test asserts W1 ≤ 0.05, far inside that.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from specinterp.linalg import aslinearoperator, spectral_density, trace_function
from specinterp.testing import operator_with_spectrum, symmetric_with_eigenvalues


@pytest.fixture(scope="module")
def known():
    rng = np.random.default_rng(11)
    lam = np.concatenate([rng.uniform(0.5, 1.5, 1200), rng.uniform(3.0, 4.5, 800)])
    return symmetric_with_eigenvalues(lam, rng), lam


def test_smoothed_density_close_to_true_histogram(known):
    a, lam = known
    dens = spectral_density(a, num_probes=8, num_steps=60, seed=0)
    assert dens.num_matvecs == 8 * 60
    grid, d = dens.grid, dens.density
    mass = np.trapezoid(d, grid)
    assert mass == pytest.approx(1.0, abs=1e-3)
    w1_smooth = wasserstein_distance(grid, lam, u_weights=d)
    w1_rule = wasserstein_distance(dens.nodes.ravel(), lam, u_weights=dens.weights.ravel())
    assert w1_rule <= 0.05
    assert w1_smooth <= 0.05
    # the two bulks carry their masses 0.6 / 0.4
    left = np.trapezoid(d[grid < 2.25], grid[grid < 2.25])
    assert left == pytest.approx(0.6, abs=0.05)


def test_log_det_against_slogdet(known):
    a, _ = known
    res = trace_function(a, "log", num_probes=20, num_steps=40, seed=1)
    sign, logdet = np.linalg.slogdet(a)
    assert sign == 1
    assert abs(res.estimate - logdet) <= 5 * res.stderr
    assert abs(res.estimate - logdet) / abs(logdet) < 0.02


@pytest.mark.parametrize(("f", "exact"), [("square", np.square), ("abs", np.abs)])
def test_trace_functions(rng, f, exact):
    lam = rng.uniform(-2, 3, 500)
    a = symmetric_with_eigenvalues(lam, rng)
    res = trace_function(a, f, num_probes=30, num_steps=30, seed=2)
    assert abs(res.estimate - exact(lam).sum()) <= 5 * res.stderr


def test_exact_for_few_distinct_eigenvalues(rng):
    """Fewer distinct eigenvalues than steps: Lanczos stops early and the rule is exact."""
    lam = np.repeat([1.0, 2.0, 4.0], 100)
    op = operator_with_spectrum(lam, rng)
    dens = spectral_density(op, num_probes=4, num_steps=30, seed=0)
    assert dens.num_matvecs <= 4 * 4
    support = dens.nodes[dens.weights > 1e-12]
    assert np.all(np.min(np.abs(support[:, None] - np.array([1.0, 2.0, 4.0])), axis=1) < 1e-10)
    res = trace_function(op, "log", num_probes=4, num_steps=30, seed=0)
    assert np.isfinite(res.estimate)
    assert res.estimate == pytest.approx(100 * math.log(8.0), rel=0.05)


def test_same_answer_on_every_backend(xp_eager, rng):
    xp = xp_eager
    a = symmetric_with_eigenvalues(rng.uniform(0.5, 2, 80), rng)
    ref = trace_function(a, "log", num_probes=3, num_steps=15, seed=9)
    got = trace_function(
        aslinearoperator(xp.asarray(a), symmetric=True), "log", num_probes=3, num_steps=15, seed=9
    )
    assert got.estimate == pytest.approx(ref.estimate, rel=1e-10 if xp.is_float64 else 1e-4)


def test_bad_arguments(rng):
    with pytest.raises(ValueError, match="positive definite"):
        trace_function(
            symmetric_with_eigenvalues(np.array([-1.0, 2.0, 3.0]), rng),
            "log",
            num_probes=2,
            num_steps=3,
        )
    with pytest.raises(ValueError, match="symmetric"):
        spectral_density(rng.standard_normal((4, 4)) + 10 * np.triu(np.ones((4, 4))))
    with pytest.raises(ValueError, match="callable"):
        trace_function(np.eye(3), "exp")
