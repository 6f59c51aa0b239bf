"""One weight-spectra table for any framework: values against dense eigenvalues, a planted
(learned-like) spike that dies under shuffling, a correlation trap that survives it, and the
same table from torch, JAX and arraynet holding the same weights."""

from __future__ import annotations

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

from specinterp import rmt
from specinterp.errors import ModelError


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    # layer 1: Gaussian bulk plus a rank-one spike far above the BBP threshold (structure)
    w1 = rng.standard_normal((120, 240)) / np.sqrt(240)
    u, v = rng.standard_normal(120), rng.standard_normal(240)
    w1 += 3.0 * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    # layer 2: Gaussian bulk with one huge entry (a correlation trap: survives shuffling)
    w2 = rng.standard_normal((60, 120)) / np.sqrt(120)
    w2[3, 7] = 12.0
    return w1, w2


def test_table_values_and_spikes():
    w1, w2 = _weights()
    net = an.Sequential([an.Dense(w1), an.ReLU(), an.Dense(w2)])
    rows = rmt.model_layers(net, num_bootstrap=0, as_frame=False)
    assert [r["shape"] for r in rows] == [(120, 240), (60, 120)]
    for r, w in zip(rows, (w1, w2), strict=True):
        lam = np.linalg.eigvalsh(w @ w.T / w.shape[1])  # m ≤ n orientation, dense truth
        assert r["lambda_max"] == pytest.approx(lam[-1], rel=1e-10)
        assert r["stable_rank"] == pytest.approx(np.sum(lam) / lam[-1], rel=1e-10)
    spike, trap = rows
    assert spike["num_spikes"] >= 1 and spike["num_spikes_randomized"] == 0
    assert trap["num_spikes"] >= 1 and trap["num_spikes_randomized"] >= 1
    assert {"alpha", "alpha_status", "power_law_supported", "alpha_weighted"} <= set(spike)


def test_same_table_from_every_framework():
    torch = pytest.importorskip("torch")
    w1, w2 = _weights(1)
    net = an.Sequential([an.Dense(w1), an.Tanh(), an.Dense(w2)])
    tnet = torch.nn.Sequential(
        torch.nn.Linear(240, 120, bias=False), torch.nn.Tanh(), torch.nn.Linear(120, 60, bias=False)
    ).double()
    with torch.no_grad():
        tnet[0].weight.copy_(torch.as_tensor(w1))
        tnet[2].weight.copy_(torch.as_tensor(w2))
    ours = rmt.model_layers(net, num_bootstrap=20, as_frame=False)
    theirs = rmt.model_layers(tnet, num_bootstrap=20, as_frame=False)
    for a, b in zip(ours, theirs, strict=True):
        for key in ("lambda_max", "num_spikes", "alpha", "alpha_lo", "stable_rank", "entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, nan_ok=True)


def test_frame_and_errors():
    pd = pytest.importorskip("pandas")
    w1, w2 = _weights(2)
    frame = rmt.model_layers(an.Sequential([an.Dense(w1), an.ReLU(), an.Dense(w2)]))
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2

    class NoWeights:
        pass

    with pytest.raises(ModelError):
        rmt.model_layers(NoWeights())
