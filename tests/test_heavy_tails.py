"""Power-law fits of spectral tails (theory §4): the MLE against scipy, x_min against the
powerlaw package, confidence-interval coverage by seeded Monte Carlo, and honest failure."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from specinterp.errors import NonFiniteError, ShapeError
from specinterp.heavy_tails import _fits, power_law_fit
from specinterp.rmt import power_law_fit as from_rmt


def _pareto(rng, n, alpha, x_min=1.0):
    """Inverse-transform samples of p(x) ∝ x^{−α} on [x_min, ∞)."""
    return x_min * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


def test_mle_equals_scipy_pareto_fit_at_the_chosen_x_min(rng):
    stats = pytest.importorskip("scipy.stats")
    x = _pareto(rng, 400, 2.7, x_min=0.5)
    fit = power_law_fit(x, num_bootstrap=0)
    tail = x[x >= fit.x_min]
    b, _, _ = stats.pareto.fit(tail, floc=0.0, fscale=fit.x_min)  # b = α − 1
    assert fit.alpha == pytest.approx(1.0 + b, rel=1e-9)
    assert fit.num_tail == tail.size
    assert fit.alpha_stderr == pytest.approx((fit.alpha - 1) / math.sqrt(tail.size))
    assert from_rmt is power_law_fit


@pytest.mark.parametrize("alpha", [1.8, 2.5, 4.0])
@pytest.mark.parametrize("body", [False, True])
def test_x_min_minimises_the_ks_distance_and_agrees_with_powerlaw(alpha, body):
    # the powerlaw package (Alstott et al.) fits the same MLE; its x_min minimises a
    # one-sided-limit KS distance, ours the two-sided sup: ours is at least as good under the
    # two-sided definition, and at powerlaw's x_min the two MLEs coincide
    powerlaw = pytest.importorskip("powerlaw")
    rng = np.random.default_rng(int(alpha * 10) + body)
    x = _pareto(rng, 400, alpha)
    if body:  # mass below the tail, as in an ESD's bulk
        x = np.concatenate([x, rng.uniform(0.1, 1.0, 300)])
    ours = power_law_fit(x, num_bootstrap=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # powerlaw warns about its optimiser's start value
        theirs = powerlaw.Fit(x, verbose=False, parameter_ranges={"alpha": [1.0, 20.0]})
    xs = np.sort(x)
    cand, alphas, ks = _fits(xs, 10)
    at_theirs = int(np.flatnonzero(xs[cand] == theirs.xmin)[0])
    assert ours.ks_distance <= ks[at_theirs] + 1e-15
    assert alphas[at_theirs] == pytest.approx(theirs.power_law.alpha, rel=1e-4)
    assert ours.alpha == pytest.approx(theirs.power_law.alpha, abs=4 * ours.alpha_stderr)


def test_bootstrap_interval_covers_the_true_exponent_at_its_rate():
    # 40 seeded samples of 300 points (α = 2.5, x_min = 1) below a uniform body; the 90 %
    # bootstrap interval (x_min refitted on each resample) should cover α in ≈ 90 % of them:
    # binomial sd √(0.9·0.1/40) = 0.047, so accept coverage ≥ 0.9 − 3 sd ≈ 0.76
    covered = 0
    for s in range(40):
        rng = np.random.default_rng(1000 + s)
        x = np.concatenate([_pareto(rng, 300, 2.5), rng.uniform(0.2, 1.0, 100)])
        lo, hi = power_law_fit(x, num_bootstrap=60, confidence=0.9, seed=s, compare=()).alpha_ci
        covered += lo <= 2.5 <= hi
    assert covered / 40 >= 0.76


def test_too_short_a_tail_is_a_status_not_a_number():
    fit = power_law_fit(np.array([1.0, 2.0, 3.0, -1.0, 0.0]))
    assert fit.status == "tail too short" and math.isnan(fit.alpha)
    constant = power_law_fit(np.ones(50))  # no spread: no exponent
    assert constant.status == "tail too short"


def test_bad_input():
    with pytest.raises(ShapeError, match="1-d"):
        power_law_fit(np.ones((3, 3)))
    with pytest.raises(NonFiniteError):
        power_law_fit(np.array([1.0, np.inf] * 10))
    with pytest.raises(ValueError, match="confidence"):
        power_law_fit(np.arange(1.0, 30.0), confidence=1.5)
    with pytest.raises(ValueError, match="compare"):
        power_law_fit(np.arange(1.0, 30.0), compare=("gamma",))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_spectrum_has_no_supported_power_law_tail(seed):
    # the Marchenko–Pastur ESD of a Gaussian matrix ends at a hard edge: an exponential fits
    # its upper tail significantly better than any power law (Vuong's test)
    from specinterp.rmt import weight_esd

    rng = np.random.default_rng(seed)
    lam, _ = weight_esd(rng.standard_normal((1000, 500)))
    fit = power_law_fit(lam, num_bootstrap=0)
    assert fit.status == "ok" and not fit.supported
    assert fit.comparisons["exponential"].ratio < 0


@pytest.mark.parametrize("mu", [1.0, 1.5])
def test_heavy_tailed_wishart_exponent(mu):
    # i.i.d. entries with P(|W| > w) ~ w^{−μ}, μ < 2: the ESD of W Wᵀ/n has a power-law tail of
    # exponent 1 + μ/2 (Biroli, Bouchaud & Potters 2007); at 1000 × 500 the fitted exponent is
    # within 0.1 of it and its 95 % bootstrap interval covers it (seeded)
    from specinterp.rmt import weight_esd

    rng = np.random.default_rng(7)
    w = (rng.pareto(mu, (1000, 500)) + 1.0) * rng.choice([-1.0, 1.0], (1000, 500))
    lam, _ = weight_esd(w)
    fit = power_law_fit(lam, num_bootstrap=100)
    assert fit.supported
    assert abs(fit.alpha - (1 + mu / 2)) <= 0.1
    assert fit.alpha_ci[0] <= 1 + mu / 2 <= fit.alpha_ci[1]


def test_truncated_fit_is_scipys_truncated_pareto_mle(rng):
    # with x_max the law is normalised on [x_min, x_max]; its MLE at the chosen x_min equals
    # the numerical maximum of scipy's truncpareto likelihood (b = α − 1, c = x_max / x_min).
    # (The powerlaw package's xmax fit lands on a lower likelihood here, so it is not the
    # reference.) Without truncation the same data give a biased exponent.
    stats = pytest.importorskip("scipy.stats")
    optimize = pytest.importorskip("scipy.optimize")
    x = _pareto(rng, 3000, 2.2)
    x = x[x < 20.0]
    fit = power_law_fit(x, x_max=20.0, num_bootstrap=0)
    tail = x[x >= fit.x_min]
    assert fit.num_tail == tail.size and fit.x_max == 20.0

    def nll(b):
        return -np.sum(stats.truncpareto.logpdf(tail, b, 20.0 / fit.x_min, scale=fit.x_min))

    def score(b, h=1e-6):  # central difference of scipy's log-likelihood
        return (nll(b + h) - nll(b - h)) / (2 * h)

    b_star = optimize.brentq(score, 0.05, 10.0, xtol=1e-13)
    assert fit.alpha == pytest.approx(1.0 + b_star, abs=1e-8)
    assert abs(fit.alpha - 2.2) < 4 * fit.alpha_stderr
    untruncated = power_law_fit(x, num_bootstrap=0)
    assert untruncated.alpha > fit.alpha
    # values above x_max are discarded, not fitted
    assert power_law_fit(np.r_[x, 50.0, 60.0], x_max=20.0, num_bootstrap=0).alpha == fit.alpha


def _cutoff_sample(rng, n, alpha, lam):
    """Rejection samples of p(x) ∝ x^{−α} e^{−λx} on [1, ∞)."""
    out = np.empty(0)
    while out.size < n:
        x = _pareto(rng, 4 * n, alpha)
        out = np.r_[out, x[rng.random(x.size) < np.exp(-lam * (x - 1.0))]]
    return out[:n]


@pytest.mark.parametrize("cutoff", [0.0, 0.05])
def test_likelihood_ratios_agree_with_the_powerlaw_package(cutoff):
    # the same three tests (exponential, log-normal by Vuong; the nested cutoff law by χ²₁)
    # computed by the powerlaw package at the same x_min: R and p agree (to 0.01 in R where
    # R ≈ 0: on a pure power law the log-normal's likelihood supremum lies at μ → −∞, where
    # each optimiser stops somewhere different)
    powerlaw = pytest.importorskip("powerlaw")
    rng = np.random.default_rng(3)
    x = _cutoff_sample(rng, 800, 1.8, cutoff) if cutoff else _pareto(rng, 800, 2.5)
    fit = power_law_fit(x, num_bootstrap=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = powerlaw.Fit(x, xmin=fit.x_min, verbose=False)
        for name in ("exponential", "lognormal", "truncated_power_law"):
            r, p = theirs.distribution_compare("power_law", name, nested=name.startswith("t"))
            ours = fit.comparisons[name]
            assert ours.ratio == pytest.approx(r, rel=1e-4, abs=1e-2)
            assert ours.p_value == pytest.approx(p, rel=1e-3, abs=1e-2)
    assert fit.cutoff == bool(cutoff) and fit.comparisons["truncated_power_law"].nested


def test_goodness_of_fit_p_value_is_calibrated_and_has_power():
    # under the null (a power-law tail above a body) the semi-parametric bootstrap p-value
    # falls below 0.1 in at most about 10 % of seeded samples (binomial sd √(0.09/24) = 0.061:
    # accept ≤ 0.1 + 3 sd); shifted exponential samples of 400 points are rejected in at least
    # 40 % of them (the test's power with tails of ≥ 50 points; x_min is free to move up, where
    # a short exponential stretch resembles a power law, so the power is far from 1)
    null = alt = 0
    for s in range(24):
        rng = np.random.default_rng(2000 + s)
        x = np.concatenate([_pareto(rng, 200, 2.5), rng.uniform(0.2, 1.0, 60)])
        kw = {"num_bootstrap": 0, "num_gof": 50, "seed": s, "compare": (), "min_tail": 50}
        null += power_law_fit(x, **kw).gof_p_value < 0.1
        y = np.random.default_rng(3000 + s).exponential(1.0, 400) + 0.5
        alt += power_law_fit(y, **kw).gof_p_value < 0.1
    assert null / 24 <= 0.1 + 3 * 0.061
    assert alt / 24 >= 0.4


def test_unsupported_by_goodness_of_fit():
    y = np.random.default_rng(3003).exponential(1.0, 400) + 0.5
    fit = power_law_fit(y, num_bootstrap=0, num_gof=50, compare=(), min_tail=50, seed=3)
    assert fit.gof_p_value < 0.1 and not fit.supported
    with pytest.raises(ValueError, match="x_max"):
        power_law_fit(np.arange(1.0, 30.0), x_max=-1.0)
    with pytest.raises(ValueError, match="0 or more"):
        power_law_fit(np.arange(1.0, 30.0), num_gof=-5)
