"""Trace estimators: unbiasedness by seeded Monte Carlo, O(1/m) decay, backend agreement.

Unbiasedness: the mean of R independent estimates is compared with the exact trace within
5 standard errors of that mean (estimated from the R estimates): a correct estimator fails for
a negligible fraction (< 1e-6) of seeds. Decay: the root-mean-square error over R seeds is fitted
against the budget m on a log-log scale.
"""

from __future__ import annotations

import numpy as np
import pytest

from specinterp.linalg import aslinearoperator, trace
from specinterp.testing import operator_with_spectrum, symmetric_with_eigenvalues

METHODS = ["hutchinson", "hutch++", "xtrace"]


@pytest.fixture(scope="module")
def psd_decaying():
    rng = np.random.default_rng(7)
    lam = 1.0 / np.arange(1, 401) ** 2
    return symmetric_with_eigenvalues(lam, rng), float(lam.sum())


@pytest.mark.parametrize("method", METHODS)
def test_unbiased(method):
    rng = np.random.default_rng(3)
    lam = rng.uniform(-1.0, 3.0, 150)  # indefinite: unbiasedness does not need PSD
    a = symmetric_with_eigenvalues(lam, rng)
    ests = np.array([trace(a, method=method, num_matvecs=12, seed=s).estimate for s in range(600)])
    assert abs(ests.mean() - lam.sum()) <= 5 * ests.std(ddof=1) / np.sqrt(ests.size)


def _log_log_slope(a, true, method, budgets, reps=60):
    rms = []
    for m in budgets:
        errs = [trace(a, method=method, num_matvecs=m, seed=s).estimate - true for s in range(reps)]
        rms.append(np.sqrt(np.mean(np.square(errs))))
    return np.polyfit(np.log(budgets), np.log(rms), 1)[0]


def test_hutchpp_and_xtrace_decay_like_one_over_m(psd_decaying):
    a, true = psd_decaying
    budgets = [12, 24, 48, 96]
    hutch = _log_log_slope(a, true, "hutchinson", budgets)
    assert -0.7 < hutch < -0.3  # Monte Carlo rate m^{-1/2}
    for method in ("hutch++", "xtrace"):
        assert _log_log_slope(a, true, method, budgets) < -0.9  # m^{-1} or faster


def test_stderr_is_calibrated(psd_decaying):
    a, true = psd_decaying
    for method in METHODS:
        res = [trace(a, method=method, num_matvecs=30, seed=s) for s in range(200)]
        z = np.array([(r.estimate - true) / r.stderr for r in res])
        # |z| > 3 should be rare for a calibrated error bar (generous: heavy tails at small m)
        assert np.mean(np.abs(z) > 3) < 0.1, method


def test_matrix_free_and_budget_accounting(rng):
    lam = rng.uniform(0, 1, 3000)
    op = operator_with_spectrum(lam, rng)
    for method, m in (("hutchinson", 40), ("hutch++", 42), ("xtrace", 40)):
        res = trace(op, method=method, num_matvecs=m, seed=0)
        assert res.num_matvecs == m
        assert abs(res.estimate - lam.sum()) <= 5 * res.stderr


@pytest.mark.parametrize("method", METHODS)
def test_same_answer_on_every_backend(xp_eager, rng, method):
    xp = xp_eager
    a = symmetric_with_eigenvalues(rng.uniform(0, 2, 60), rng)
    ref = trace(a, method=method, num_matvecs=18, seed=4)
    got = trace(
        aslinearoperator(xp.asarray(a), symmetric=True), method=method, num_matvecs=18, seed=4
    )
    tol = 1e-10 if xp.is_float64 else 1e-4
    assert got.estimate == pytest.approx(ref.estimate, rel=tol)
    assert got.stderr == pytest.approx(ref.stderr, rel=tol * 100)


def test_bad_arguments(rng):
    a = np.eye(5)
    with pytest.raises(ValueError, match="method"):
        trace(a, method="girard")
    with pytest.raises(ValueError, match="≥ 2"):
        trace(a, method="hutchinson", num_matvecs=1)
    with pytest.raises(ValueError, match="≥ 6"):
        trace(a, method="hutch++", num_matvecs=5)
    with pytest.raises(ValueError, match="≥ 4"):
        trace(a, method="xtrace", num_matvecs=3)
    from specinterp.errors import ShapeError

    with pytest.raises(ShapeError, match="square"):
        trace(rng.standard_normal((4, 5)))


def test_hutchinson_is_the_probe_mean_whatever_the_block_split(rng):
    """The estimate is ``(1/m) Σ zⱼᵀ A zⱼ`` with probe ``j`` the ``j``-th row of one seeded draw.

    ``m = 150`` spans three product blocks (64 + 64 + 22); drawing one probe per row makes the
    stream, hence the estimate, independent of that split. The reference is a dense float64
    computation on the same ±1 draws, made here with NumPy directly.
    """
    a = rng.standard_normal((90, 90))
    z = np.random.default_rng(11).integers(0, 2, size=(150, 90), dtype=np.int8) * 2.0 - 1.0
    terms = np.einsum("jn,nk,jk->j", z, a, z)
    res = trace(a, method="hutchinson", num_matvecs=150, seed=11)
    np.testing.assert_allclose(res.estimate, terms.mean(), rtol=1e-12)
    np.testing.assert_allclose(res.stderr, terms.std(ddof=1) / np.sqrt(150), rtol=1e-10)
    assert res.num_matvecs == 150
