"""Algorithmic stability: reproducible perturbations and the report against direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

import specinterp as si
from specinterp.stability import perturb_dataset


def test_flip_labels_is_exact_and_reproducible(rng):
    x = rng.standard_normal((50, 3))
    y = rng.integers(0, 4, size=50)
    _, y2, idx = perturb_dataset(x, y, fraction=0.2, seed=1, num_classes=4)
    assert idx.size == 10
    assert np.all(y2[idx] != y[idx]) and np.all((y2[idx] >= 0) & (y2[idx] < 4))
    mask = np.ones(50, bool)
    mask[idx] = False
    np.testing.assert_array_equal(y2[mask], y[mask])
    _, y3, idx3 = perturb_dataset(x, y, fraction=0.2, seed=1, num_classes=4)
    np.testing.assert_array_equal(y3, y2)
    np.testing.assert_array_equal(idx3, idx)


def test_replace_one(rng):
    x = rng.standard_normal((10, 3))
    y = np.arange(10)
    x2, y2, idx = perturb_dataset(x, y, perturbation="replace_one", seed=0)
    changed = np.flatnonzero(np.any(x2 != x, axis=1))
    np.testing.assert_array_equal(changed, idx)
    assert y2[idx[0]] != y[idx[0]]


def _ridge_fit(x, y, seed):
    """A deterministic fit: one-vs-all least squares (a linear arraynet)."""
    onehot = np.eye(3)[y]
    w = np.linalg.lstsq(x, onehot, rcond=None)[0].T
    return an.Sequential([an.Dense(w)])


def test_report_matches_direct_computation(rng):
    x = rng.standard_normal((60, 4))
    y = rng.integers(0, 3, size=60)
    xe, ye = rng.standard_normal((7, 4)), rng.integers(0, 3, size=7)
    rep = si.algorithmic_stability(_ridge_fit, x, y, xe, ye, fraction=0.1, seed=3, t8_samples=20)
    _, y2, _ = perturb_dataset(x, y, fraction=0.1, seed=3)
    a, b = _ridge_fit(x, y, 3), _ridge_fit(x, y2, 3)
    ga, gb = si.gmsi(a, xe, ye), si.gmsi(b, xe, ye)
    assert rep.before.value == pytest.approx(ga.value, rel=1e-12)
    assert rep.relative_change["gmsi"] == pytest.approx(
        abs(gb.value - ga.value) / ga.value, rel=1e-9
    )
    za, zb = a(xe), b(xe)
    assert rep.prediction_change == pytest.approx(np.mean(np.linalg.norm(za - zb, axis=1)))
    assert rep.t8 is not None and rep.t8.predictions.holds(rtol=1e-9)


def test_bad_arguments(rng):
    x, y = rng.standard_normal((5, 2)), np.arange(5)
    with pytest.raises(ValueError, match="perturbation"):
        perturb_dataset(x, y, perturbation="noise")
    with pytest.raises(ValueError, match="fraction"):
        perturb_dataset(x, y, fraction=0.0)
    with pytest.raises(TypeError, match="integer"):
        perturb_dataset(x, y.astype(float))
