"""sweep: chunked per-sample metrics, identical locally, on a thread pool and on Dask."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

import specinterp as si


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    net = an.init_mlp([6, 8, 3], an.ReLU(), seed=1)
    return net, rng.standard_normal((37, 6)), rng.integers(0, 3, size=37)


METRICS = ("jacobian_spectra", "certified_radius", "max_sensitivity", "predictions")


def test_sweep_matches_whole_batch(data):
    net, x, y = data
    res = si.sweep(net, x, y, metrics=METRICS, chunk_size=10)
    whole = si.jacobian_spectra(net, x)
    np.testing.assert_allclose(res["entropy"], whole.entropy, rtol=1e-12)
    np.testing.assert_allclose(res["certified_radius"], si.certified_radius(net, x), rtol=1e-12)
    z = net(x)
    ce = np.log(np.exp(z).sum(1)) - z[np.arange(37), y]
    np.testing.assert_allclose(res["cross_entropy"], ce, rtol=1e-10)
    want = _max_sensitivity(net, x, 10, 0, METRICS.index("max_sensitivity"), len(METRICS))
    np.testing.assert_allclose(res["max_sensitivity"], want, rtol=1e-12)


def _max_sensitivity(model, x, chunk_size, seed, k=0, num_metrics=1, embedded=False):
    """The documented metric, chunk by chunk: saliency of the predicted class under 8 uniform
    L∞ perturbations of radius 0.05 from the seed of metric ``k`` of the chunk (of the
    embeddings for token ids)."""
    from specinterp import attribution as attr
    from specinterp.model import input_space

    m = si.as_model(model)
    starts = range(0, int(x.shape[0]), chunk_size)
    seqs = np.random.SeedSequence(seed).spawn(len(starts))
    out = []
    for s, seq in zip(starts, seqs, strict=True):
        xc = x[s : s + chunk_size]
        target = np.argmax(si._xp.to_numpy(m.apply(xc)), axis=1)
        me, e = input_space(m, xc) if embedded else (m, xc)
        child = seq.spawn(num_metrics)[k]
        deltas = attr.perturbations(e, 0.05, 8, seed=np.random.default_rng(child))
        base = si._xp.to_numpy(attr.saliency(me, e, target)).reshape(len(target), -1)
        worst = np.zeros(len(target))
        for j in range(8):
            moved = si._xp.to_numpy(attr.saliency(me, e + deltas[:, j], target))
            d = np.linalg.norm(moved.reshape(len(target), -1) - base, axis=1)
            worst = np.maximum(worst, d / np.linalg.norm(base, axis=1))
        out.append(worst)
    return np.concatenate(out)


def test_sweep_max_sensitivity_of_a_token_model_moves_its_embeddings():
    """Perturbed integer ids would not move (the metric would be 0 everywhere)."""
    torch = pytest.importorskip("torch")
    from .lm_models import BagOfTokens

    lm = BagOfTokens()
    ids = torch.randint(0, 7, (10, 5))
    res = si.sweep(lm, ids, metrics=("max_sensitivity",), chunk_size=4, seed=2)
    want = _max_sensitivity(lm, ids, 4, 2, embedded=True)
    assert np.all(want > 0)
    np.testing.assert_allclose(res["max_sensitivity"], want, rtol=1e-10)


def test_sweep_is_bitwise_identical_on_a_thread_pool(data):
    net, x, y = data
    local = si.sweep(net, x, y, metrics=METRICS, chunk_size=8, seed=3)
    with ThreadPoolExecutor(2) as pool:
        remote = si.sweep(net, x, y, metrics=METRICS, chunk_size=8, seed=3, executor=pool)
    for k in local:
        np.testing.assert_array_equal(local[k], remote[k])


def test_sweep_on_a_dask_local_cluster(data):
    distributed = pytest.importorskip("dask.distributed")
    net, x, y = data
    local = si.sweep(net, x, y, metrics=METRICS, chunk_size=8, seed=5)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = si.sweep(net, x, y, metrics=METRICS, chunk_size=8, seed=5, executor=client)
    for k in local:
        np.testing.assert_array_equal(local[k], remote[k])


def test_sweep_bad_arguments(data):
    net, x, _y = data
    with pytest.raises(ValueError, match="chunk_size"):
        si.sweep(net, x, chunk_size=0)
    with pytest.raises(ValueError, match="unknown metrics"):
        si.sweep(net, x, metrics=("entropy",))


def test_sweep_predictions_of_a_sequence_model_are_per_token():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lm = torch.nn.Sequential(torch.nn.Embedding(7, 4), torch.nn.Tanh(), torch.nn.Linear(4, 7))
    lm = lm.double()
    x = torch.randint(0, 7, (9, 5))
    y = torch.randint(0, 7, (9, 5))
    res = si.sweep(lm, x, y, metrics=("predictions",), chunk_size=4)
    with torch.no_grad():
        z = lm(x)
    np.testing.assert_array_equal(res["prediction"], z.argmax(-1).numpy())
    per_token = torch.nn.functional.cross_entropy(z.transpose(1, 2), y, reduction="none")
    np.testing.assert_allclose(res["cross_entropy"], per_token.mean(1).numpy(), rtol=1e-12)
