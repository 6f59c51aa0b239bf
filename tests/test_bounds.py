"""Theory §2 matrix-level theorems L1, L2, T1, T2, T10 as property and Monte Carlo tests.

Monte Carlo tolerances: a sample mean of N iid draws is compared with its expectation within
5 estimated standard errors (two-sided normal tail 6e-7 per comparison; the draws are seeded,
so the test is deterministic — the tolerance says that a correct implementation would pass
for all but a negligible fraction of seeds). Frequencies are compared with a probability bound
within 4 binomial standard deviations (one-sided tail 3e-5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given

from specinterp import bounds
from specinterp.testing import haar_orthogonal, matrix_with_spectrum
from specinterp.testing.strategies import spectral_matrices

from .reference import stats

Z_MEAN = 5.0
Z_FREQ = 4.0


def _tol(xp):
    return 1e-9 if xp.is_float64 else 1e-4


@given(case=spectral_matrices())
def test_l1_stable_rank_le_effective_rank_le_rank(xp, case):
    if case.values[0] == 0:
        return
    ineq = bounds.stable_vs_effective_rank(xp.asarray(case.matrix))
    assert ineq.name == "L1"
    assert ineq.holds(rtol=_tol(xp))
    ref = stats(case.matrix)
    assert float(xp.to_numpy(ineq["stable_rank"])) == pytest.approx(
        ref["stable_rank"], rel=_tol(xp) * 10
    )


@given(case=spectral_matrices())
def test_l2_entropy_bounds_attribution_condition_number(xp, case):
    if case.values[0] == 0:
        return
    ineq = bounds.entropy_attribution_bound(xp.asarray(case.matrix))
    assert ineq.holds(rtol=_tol(xp))
    r = min(case.matrix.shape)
    k2 = float(xp.to_numpy(ineq["attribution_condition_squared"]))
    s = case.values
    assert k2 == pytest.approx(r * s[0] ** 2 / np.sum(s**2), rel=_tol(xp) * 10)


def test_l1_l2_are_tight_for_flat_spectra(xp, rng):
    """Equal singular values: srank = erank = rank = r, and r·e^{-H} = κ_attr² = 1."""
    a = xp.asarray(matrix_with_spectrum(np.full(4, 2.0), 4, 9, rng))
    l1 = bounds.stable_vs_effective_rank(a)
    for _, v in l1.terms:
        assert float(xp.to_numpy(v)) == pytest.approx(4.0, rel=_tol(xp))
    l2 = bounds.entropy_attribution_bound(a)
    low, k2, _ = (float(xp.to_numpy(v)) for _, v in l2.terms)
    assert low == pytest.approx(1.0, rel=_tol(xp)) and k2 == pytest.approx(1.0, rel=_tol(xp))


def test_inequality_reports_violations():
    ineq = bounds.Inequality("X", (("a", np.array([1.0, 3.0])), ("b", np.array([2.0, 2.0]))))
    assert not ineq.holds()
    np.testing.assert_array_equal(ineq.margins()[0], [1.0, -1.0])
    with pytest.raises(KeyError, match="no term"):
        ineq["c"]


# --------------------------------------------------------------------------- T1
@pytest.mark.parametrize("noise", ["gaussian", "sphere"])
def test_t1_expected_gain_by_monte_carlo(xp, rng, noise):
    s = np.array([4.0, 2.0, 1.0, 0.5, 0.0, 0.0])
    a_np = matrix_with_spectrum(s, 6, 20, rng)
    eps = 0.3
    ineq = bounds.typical_sensitivity(xp.asarray(a_np), eps=eps)
    assert ineq.holds(rtol=_tol(xp))
    n_draws = 40_000
    if noise == "gaussian":
        delta = rng.normal(0.0, eps / math.sqrt(20), size=(n_draws, 20))
    else:
        delta = rng.standard_normal((n_draws, 20))
        delta *= eps / np.linalg.norm(delta, axis=1, keepdims=True)
    gains = np.sum((delta @ a_np.T) ** 2, axis=1)
    expected = float(xp.to_numpy(ineq["expected_squared_gain"]))
    assert expected == pytest.approx(eps**2 * np.sum(s**2) / 20, rel=_tol(xp))
    assert abs(gains.mean() - expected) <= Z_MEAN * gains.std() / math.sqrt(n_draws)
    worst = float(xp.to_numpy(ineq["worst_case_squared"]))
    assert worst == pytest.approx((eps * s[0]) ** 2, rel=_tol(xp))
    if noise == "sphere":  # the worst case is a bound on every draw
        assert gains.max() <= worst * (1 + 1e-12)


def test_t1_zero_matrix_has_a_zero_chain():
    ineq = bounds.typical_sensitivity(np.zeros((2, 3, 4)), eps=0.5)
    for _, v in ineq.terms:
        np.testing.assert_array_equal(v, 0.0)
    assert ineq.holds()


def test_t1_rejects_bad_radius():
    with pytest.raises(ValueError, match="positive"):
        bounds.typical_sensitivity(np.eye(3), eps=0.0)


# --------------------------------------------------------------------------- T2
@pytest.mark.parametrize("t", [0.25, 1.0, 3.0])
def test_t2_tail_probabilities_by_monte_carlo(xp, rng, t):
    s = np.array([3.0, 1.0, 1.0, 0.2])
    a_np = matrix_with_spectrum(s, 4, 10, rng)
    eps = 1.5
    tb = bounds.gaussian_sensitivity_tail(xp.asarray(a_np), eps=eps, t=t)
    coef = eps**2 * s**2 / 10
    assert float(xp.to_numpy(tb.mean)) == pytest.approx(coef.sum(), rel=_tol(xp))
    assert float(xp.to_numpy(tb.upper)) == pytest.approx(
        coef.sum() + 2 * np.linalg.norm(coef) * math.sqrt(t) + 2 * coef.max() * t, rel=_tol(xp)
    )
    n_draws = 50_000
    delta = rng.normal(0.0, eps / math.sqrt(10), size=(n_draws, 10))
    gains = np.sum((delta @ a_np.T) ** 2, axis=1)
    slack = Z_FREQ * math.sqrt(tb.probability * (1 - tb.probability) / n_draws)
    assert np.mean(gains >= float(xp.to_numpy(tb.upper))) <= tb.probability + slack
    assert np.mean(gains <= float(xp.to_numpy(tb.lower))) <= tb.probability + slack


def test_t2_rejects_bad_arguments():
    with pytest.raises(ValueError, match="t must be positive"):
        bounds.gaussian_sensitivity_tail(np.eye(2), eps=1.0, t=0.0)


# --------------------------------------------------------------------------- T10
def test_t10_deep_linear_frobenius_by_monte_carlo(rng):
    widths = (12, 30, 7, 9)
    variances = (2.0, 0.5, 1.5)
    expected = bounds.deep_linear_frobenius(widths, variances)
    assert expected == pytest.approx(9 * 2.0 * 0.5 * 1.5)
    n_draws = 20_000
    samples = np.empty(n_draws)
    for k in range(n_draws):
        prod = np.eye(widths[0])
        for l_, v in enumerate(variances):
            w = rng.normal(0.0, math.sqrt(v / widths[l_]), size=(widths[l_ + 1], widths[l_]))
            prod = w @ prod
        samples[k] = np.sum(prod**2)
    assert abs(samples.mean() - expected) <= Z_MEAN * samples.std() / math.sqrt(n_draws)


def test_t10_orthogonal_factors_are_isometries(xp, rng):
    prod = np.eye(16)
    for _ in range(5):
        prod = haar_orthogonal(16, rng) @ prod
    from specinterp import singular_values

    np.testing.assert_allclose(
        xp.to_numpy(singular_values(xp.asarray(prod))), np.ones(16), rtol=_tol(xp) * 10
    )


def test_t10_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="L\\+1 widths"):
        bounds.deep_linear_frobenius((3, 4), (1.0, 1.0))
