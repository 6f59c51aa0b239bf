"""Theory §4: Marchenko–Pastur, BBP, Fuss–Catalan and circular-convolution spectra.

Finite-size tolerances are stated where used: the bulk edges of an m × n Gaussian sample
converge at rate n^{-2/3} (Tracy–Widom scale, ≈ 0.01–0.02 here); an outlier's location
fluctuates with relative standard deviation √(2(1 − q/(ℓ−1)²)/n) (Paul 2007): 1.4 % at
n = 10 000, so the 5 % window of the acceptance test is 3.5 standard deviations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from specinterp import rmt
from specinterp.errors import ShapeError
from specinterp.rmt import MarchenkoPastur

LAWS = [(0.25, 1.0), (0.5, 2.0), (1.0, 1.0), (2.5, 0.7)]


@pytest.mark.parametrize(("q", "s2"), LAWS)
def test_pdf_integrates_to_non_atomic_mass(q, s2):
    law = MarchenkoPastur(q, s2)
    lo, hi = law.edges
    mass, _ = quad(lambda x: float(law.pdf(np.asarray(x))), lo, hi, limit=400)
    assert mass == pytest.approx(min(1.0, 1.0 / q), rel=1e-8)
    assert law.atom == pytest.approx(max(0.0, 1 - 1 / q))


@pytest.mark.parametrize(("q", "s2"), LAWS)
def test_cdf_matches_numerical_integration(q, s2):
    law = MarchenkoPastur(q, s2)
    lo, hi = law.edges
    xs = np.linspace(lo, hi, 9)[1:-1]
    numeric = [law.atom + quad(lambda t: float(law.pdf(np.asarray(t))), lo, x)[0] for x in xs]
    np.testing.assert_allclose(law.cdf(xs), numeric, atol=1e-9)
    np.testing.assert_allclose(law.cdf(np.array([-1.0, hi + 1])), [0.0, 1.0])
    for u in (0.1, 0.5, 0.9):
        if u > law.atom:
            assert float(law.cdf(np.asarray(law.ppf(u)))) == pytest.approx(u, abs=1e-12)


def test_pdf_cdf_on_every_backend(xp):
    law = MarchenkoPastur(0.3, 1.2)
    x = np.linspace(0.0, 3.0, 31)
    for f in (law.pdf, law.cdf):
        out = f(xp.asarray(x))
        np.testing.assert_allclose(xp.to_numpy(out), f(x), rtol=xp.rtol * 10, atol=xp.rtol)


def test_edges_closed_form():
    law = MarchenkoPastur(1000 / 4000, 1.0)
    assert law.edges == pytest.approx((0.25, 2.25))
    assert law.singular_value_edges == pytest.approx((0.5, 1.5))
    assert MarchenkoPastur(4.0, 2.0).edges == pytest.approx((2.0, 18.0))


def test_gaussian_4000x1000_fills_the_predicted_bulk(rng):
    w = rng.standard_normal((4000, 1000))
    lam, q = rmt.weight_esd(w)
    assert q == 0.25
    lam = np.asarray(lam)
    assert lam[0] == pytest.approx(0.25, abs=0.03)
    assert lam[-1] == pytest.approx(2.25, abs=0.06)


def test_esd_of_2000x4000_gaussian_is_within_ks_002(rng):
    x = rng.normal(0.0, 1.7, size=(2000, 4000))
    lam = np.linalg.eigvalsh(x @ x.T / 4000)
    for method in ("robust", "moment"):
        law = MarchenkoPastur.fit(lam, 0.5, method=method)
        assert law.sigma2 == pytest.approx(1.7**2, rel=0.01)
        assert law.ks_distance(lam) < 0.02
    # the wrong law is far: the distance is a real test statistic
    assert MarchenkoPastur(0.5, 1.7**2 * 1.3).ks_distance(lam) > 0.1


def test_ks_distance_with_atom(rng):
    x = rng.standard_normal((600, 300))  # q = 2: half the eigenvalues sit at 0
    lam = np.linalg.eigvalsh(x @ x.T / 300)
    lam[np.abs(lam) < 1e-8] = 0.0
    law = MarchenkoPastur.fit(lam, 2.0)
    assert law.sigma2 == pytest.approx(1.0, rel=0.02)
    assert law.ks_distance(lam) < 0.03


def _spiked_sample(rng, spike, m=500, n=10_000):
    z = rng.standard_normal((m, n))
    z[0] *= math.sqrt(spike)  # population covariance I + (spike − 1) e1 e1ᵀ
    return np.linalg.eigvalsh(z @ z.T / n)


def test_planted_spike_above_bbp_is_detected_at_predicted_location(rng):
    q = 0.05
    lam = _spiked_sample(rng, 4.0)
    predicted = rmt.bbp_outlier(4.0, q)
    assert predicted == pytest.approx(4.0 * (1 + 0.05 / 3))
    law = MarchenkoPastur.fit(lam, q)
    spikes = law.spikes(lam)
    assert spikes.size == 1
    assert spikes[0] == pytest.approx(predicted, rel=0.05)


def test_spike_below_bbp_is_not_detected(rng):
    q = 0.05  # threshold 1 + √q ≈ 1.22
    assert rmt.bbp_outlier(1.15, q) == pytest.approx((1 + math.sqrt(q)) ** 2)
    lam = _spiked_sample(rng, 1.15)
    assert MarchenkoPastur.fit(lam, q).spikes(lam).size == 0


def test_null_matrices_have_no_spikes(rng):
    false_spikes = 0
    for _ in range(20):
        x = rng.standard_normal((200, 500))
        lam = np.linalg.eigvalsh(x @ x.T / 500)
        false_spikes += MarchenkoPastur.fit(lam, 0.4).spikes(lam).size
    # each null matrix passes the 3-TW margin with probability < 1 %: ≥ 2 in 20 has p < 2 %
    assert false_spikes <= 1


def test_robust_fit_resists_spikes_that_bias_the_moment_fit(rng):
    lam = _spiked_sample(rng, 60.0, m=400, n=1600)
    robust = MarchenkoPastur.fit(lam, 0.25, method="robust")
    moment = MarchenkoPastur.fit(lam, 0.25, method="moment")
    assert robust.sigma2 == pytest.approx(1.0, rel=0.02)
    assert moment.sigma2 > 1.1  # the spike's 60/400 share pulls the mean up


def test_spiked_wigner_outlier(rng):
    n = 2000
    g = rng.standard_normal((n, n))
    w = (g + g.T) / math.sqrt(2 * n)
    v = np.ones(n) / math.sqrt(n)
    for theta, rel in ((2.0, 0.03), (0.5, 0.03)):
        top = np.linalg.eigvalsh(w + theta * np.outer(v, v))[-1]
        assert top == pytest.approx(rmt.bbp_outlier(theta, model="wigner"), rel=rel)


def test_fuss_catalan_edge_of_gaussian_products(rng):
    assert rmt.fuss_catalan_edge(1) == 4.0
    assert rmt.fuss_catalan_edge(2) == pytest.approx(27 / 4)
    n = 800
    prod = np.eye(n)
    for _ in range(2):
        prod = rng.normal(0, 1 / math.sqrt(n), size=(n, n)) @ prod
    top = np.linalg.svd(prod, compute_uv=False)[0] ** 2
    assert top == pytest.approx(27 / 4, rel=0.05)


def test_layer_diagnostics_of_random_and_spiked_weights(rng):
    w = rng.normal(0.0, 0.05, size=(300, 800))
    d = rmt.layer_diagnostics(w)
    assert d.law.ratio == pytest.approx(300 / 800)
    assert d.law.sigma2 == pytest.approx(0.05**2, rel=0.02)
    assert d.num_spikes == 0 and d.ks_distance < 0.05
    u, v = rng.standard_normal(300), rng.standard_normal(800)
    spiked = w + 0.2 * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v)) * math.sqrt(800)
    assert rmt.layer_diagnostics(spiked).num_spikes == 1


def test_bad_input():
    with pytest.raises(ValueError, match="ratio"):
        MarchenkoPastur(0.0)
    with pytest.raises(ValueError, match="sigma2"):
        MarchenkoPastur(0.5, -1.0)
    with pytest.raises(ValueError, match="non-negative"):
        MarchenkoPastur.fit(np.array([-1.0, 1.0, 2.0]), 0.5)
    with pytest.raises(ShapeError, match="1-d"):
        MarchenkoPastur(0.5).ks_distance(np.ones((2, 2)))
    with pytest.raises(ValueError, match="method"):
        MarchenkoPastur.fit(np.ones(4), 0.5, method="mle")
    with pytest.raises(ValueError, match="ratio"):
        rmt.bbp_outlier(3.0)
    with pytest.raises(ValueError, match="zero"):
        MarchenkoPastur.fit(np.zeros(5), 0.5)


def test_layer_diagnostics_of_a_torch_parameter_warn_nothing_and_match_numpy():
    """A module's weight (a Parameter that requires grad) gives host numbers without touching
    autograd (torch warned "Converting a tensor with requires_grad=True to a scalar")."""
    torch = pytest.importorskip("torch")
    import warnings

    torch.manual_seed(0)
    weight = torch.nn.Linear(60, 40).weight
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = rmt.layer_diagnostics(weight)
    want = rmt.layer_diagnostics(weight.detach().numpy())
    assert got.stable_rank == pytest.approx(want.stable_rank, rel=1e-5)
    assert got.entropy == pytest.approx(want.entropy, rel=1e-5)
    np.testing.assert_allclose(got.eigenvalues, want.eigenvalues, rtol=1e-5)
