"""Parts of the report: the Hessian step against dense Hessians, the density's plan, figures."""

from __future__ import annotations

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

import specinterp as si
from specinterp.report.curvature import (
    DENSITY_PROBES,
    DENSITY_STEPS,
    MIN_PROBES,
    MIN_STEPS,
    curvature,
    density_plan,
    report_tol,
)


@pytest.mark.parametrize(
    ("per", "seconds", "params", "want"),
    [
        (0.01, 120.0, 10_000, (DENSITY_PROBES, DENSITY_STEPS)),  # 2.4 s: fits
        (1.0, 120.0, 10_000, (2, 60)),  # 120 products: probes first
        (1.28, 120.0, 10_000, (2, 46)),  # 93 products: then steps
        (10.0, 120.0, 10_000, (MIN_PROBES, MIN_STEPS)),  # never below the minimum
        (0.01, 120.0, 30, (DENSITY_PROBES, 30)),  # no more steps than parameters
        (0.0, 1.0, 10_000, (DENSITY_PROBES, DENSITY_STEPS)),  # an unmeasurably fast product
    ],
)
def test_density_plan(per, seconds, params, want):
    probes, steps = density_plan(per, seconds, params)
    assert (probes, steps) == want
    if want not in ((MIN_PROBES, MIN_STEPS), (DENSITY_PROBES, min(DENSITY_STEPS, params))):
        assert probes * steps * per <= seconds


def _problem(rng, n=40):
    net = an.init_mlp([5, 6, 3], an.Tanh(), seed=1)  # float64, p = 57
    x = rng.standard_normal((n, 5))
    y = rng.integers(0, 3, n)
    return si.as_model(net), x, y


def test_curvature_against_dense_hessians(rng):
    model, x, y = _problem(rng)
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    got = curvature(model, batches, "cross_entropy", seed=0, progress=False)
    # the whole loss is the mean over the batches' samples (equal sizes: the mean of Hessians)
    dense = [np.linalg.eigvalsh(si.hessian(model, xb, yb, "cross_entropy")) for xb, yb in batches]
    whole = np.linalg.eigvalsh(si.hessian(model, x, y, "cross_entropy"))[::-1][:8]
    np.testing.assert_allclose(got.top.values, whole, rtol=1e-8, atol=1e-12)
    tops = np.stack([d[::-1][:8] for d in dense])
    np.testing.assert_allclose(got.spread, np.std(tops, axis=0, ddof=1), rtol=1e-4, atol=1e-8)
    assert (got.num_batches, got.num_samples) == (2, 40)
    assert (got.probes, got.steps) == (DENSITY_PROBES, min(DENSITY_STEPS, model.num_params))
    # one batch: no spread to compute
    one = curvature(model, [(x, y)], "cross_entropy", seed=0, progress=False)
    assert np.isnan(one.spread).all()
    np.testing.assert_allclose(one.top.values, whole, rtol=1e-8, atol=1e-12)
    # no time for the density: the least plan, and the density still integrates to one
    brief = curvature(model, [(x, y)], "cross_entropy", seed=0, density_seconds=0.0, progress=False)
    assert (brief.probes, brief.steps) == (MIN_PROBES, MIN_STEPS)
    mass = np.trapezoid(brief.density.density, brief.density.grid)
    assert mass == pytest.approx(1.0, abs=0.05)


def test_curvature_of_a_float32_model_at_its_resolution(rng):
    # tol = √eps32 = 3.5e-4: residuals within it, eigenvalues to float32's own precision
    torch = pytest.importorskip("torch")
    from .nets import tanh_mlp

    net = tanh_mlp(6, 12, 3, seed=2)
    x = torch.as_tensor(rng.standard_normal((30, 6)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 3, 30))
    model = si.as_model(net)
    assert report_tol(model) == pytest.approx(np.sqrt(np.finfo(np.float32).eps))
    assert report_tol(si.as_model(an.init_mlp([2, 3], an.Tanh()))) == 1e-6  # float64: 1e-6
    got = curvature(model, [(x, y)], "cross_entropy", seed=0, progress=False)
    h64 = si.hessian(si.as_model(net.double()), x.double(), y, "cross_entropy").numpy()
    want = np.linalg.eigvalsh(h64)[::-1][:8]
    top = got.top.values.numpy()
    assert got.top.converged
    assert np.all(got.top.residuals.numpy() <= report_tol(model) * abs(top) + 1e-6 * want[0])
    np.testing.assert_allclose(top, want, rtol=0, atol=1e-5 * want[0])


def test_alpha_figure_draws_an_interval_that_excludes_the_estimate(rng):
    # a percentile bootstrap with x_min refitted per resample may exclude the point estimate
    # (a BERT layer: α = 8.35 in [1.95, 8.09]); the figure draws the interval as it is
    import dataclasses
    from types import SimpleNamespace

    plt = pytest.importorskip("matplotlib.pyplot")
    from specinterp.report.figures import _alpha_figure

    w = rng.standard_t(3, size=(300, 200))
    diag = si.rmt.layer_diagnostics(w)
    fit = si.heavy_tails.power_law_fit(diag.eigenvalues, num_bootstrap=0, seed=0)
    assert fit.status == "ok"
    lo, hi = fit.alpha - 3.0, fit.alpha - 0.5
    odd = dataclasses.replace(fit, alpha_ci=(lo, hi))
    fig = _alpha_figure(plt, SimpleNamespace(layers=[("w", diag, None)] * 2, tails=[fit, odd]))
    ax = fig.axes[0]
    vertical = [seg for c in ax.collections for seg in c.get_segments() if seg[0][0] == seg[1][0]]
    assert len(vertical) == 1  # the resample-free fit has no interval to draw
    np.testing.assert_allclose(sorted([vertical[0][0][1], vertical[0][1][1]]), [lo, hi])
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, [fit.alpha, fit.alpha])
    plt.close(fig)
