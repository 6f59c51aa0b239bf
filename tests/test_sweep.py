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
    assert res["max_sensitivity"].shape == (37,)


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
