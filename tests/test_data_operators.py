"""Operators over a whole dataset (theory: data): the Hessian / GGN of 7 uneven batches equals
the operator on the concatenated data to 1e-12 on torch, JAX and arraynet; what can and cannot
be replayed as batches; one pass over the data per product."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from specinterp import ggn_operator, hessian_operator, linalg
from specinterp.batches import as_batches
from specinterp.data_operators import DataGGNOperator, DataHessianOperator
from specinterp.errors import DataError

from .nets import convert, three_models, torch_mlp

SIZES = [
    6,
    6,
    6,
    6,
    6,
    4,
    1,
]  # 35 samples: a loader's uneven tail (few sizes: JAX compiles per size)


def _data(loss, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sum(SIZES), 5))
    y = (
        rng.integers(0, 3, sum(SIZES))
        if loss == "cross_entropy"
        else rng.standard_normal((sum(SIZES), 3))
    )
    return x, y


def _split(name, x, y):
    edges = np.cumsum([0, *SIZES])
    return [(convert(name, x[a:b]), convert(name, y[a:b])) for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize(
    ("framework", "loss"),
    [
        ("torch", "cross_entropy"),
        ("torch", "mse"),
        ("arraynet", "cross_entropy"),
        ("arraynet", "mse"),
        ("jax", "cross_entropy"),  # one loss: JAX compiles every product per batch size
    ],
)
def test_seven_uneven_batches_equal_the_concatenated_operator(framework, loss):
    model = three_models(torch_mlp(1))[framework]
    x, y = _data(loss)
    batches = _split(framework, x, y)
    xa, ya = convert(framework, x), convert(framework, y)
    v = np.random.default_rng(2).standard_normal((model.num_params, 3))
    va = convert(framework, v)
    for build, data_cls in (
        (hessian_operator, DataHessianOperator),
        (ggn_operator, DataGGNOperator),
    ):
        whole = build(model, xa, ya, loss)
        streamed = build(model, data=batches, loss=loss)
        assert isinstance(streamed, data_cls)
        assert streamed.num_samples == 35 and streamed.num_batches == 7
        want = np.asarray(whole @ va)
        got = np.asarray(streamed @ va)
        assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want))
        assert streamed.num_passes == 1  # a block of three vectors is one pass
        # the positional form: data in place of x, y omitted
        again = build(model, batches, loss=loss)
        np.testing.assert_allclose(np.asarray(again @ va[:, 0]), want[:, 0], rtol=1e-12, atol=0)


def test_replayable_sources_and_refusals():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    model = three_models(torch_mlp(1))["torch"]
    x, y = _data("cross_entropy")
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    v = torch.as_tensor(np.random.default_rng(3).standard_normal(model.num_params))
    want = hessian_operator(model, xt, yt, "cross_entropy") @ v
    dataset = TensorDataset(xt, yt)

    class Shards:  # any re-iterable object: a fresh pass at each iter()
        def __iter__(self):
            return iter(_split("torch", x, y))

    class MyLoader(DataLoader):
        pass

    sources = {
        "re-iterable object": Shards(),
        "DataLoader subclass, shuffled": MyLoader(dataset, batch_size=5, shuffle=True),
        "list": _split("torch", x, y),
        "factory": lambda: iter(_split("torch", x, y)),
        "loader": DataLoader(dataset, batch_size=6),
        "shuffled loader, replayed in order": DataLoader(dataset, batch_size=6, shuffle=True),
    }
    for name, src in sources.items():
        got = hessian_operator(model, data=src, loss="cross_entropy") @ v
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14, msg=name)
    with pytest.raises(DataError, match="shuffle=False"):
        as_batches(DataLoader(dataset, batch_size=6, shuffle=True, drop_last=True))
    with pytest.raises(DataError, match="one-shot"):
        hessian_operator(model, data=(b for b in _split("torch", x, y)), loss="cross_entropy")
    with pytest.raises(DataError, match="pair"):
        hessian_operator(model, data=[xt, yt, yt], loss="cross_entropy")
    with pytest.raises(TypeError, match="loss"):
        hessian_operator(model, data=sources["list"])
    dicts = [{"input_ids": xt[:4], "labels": yt[:4]}]  # a Hugging Face-style batch
    with pytest.raises(DataError, match=r"b\['input_ids'\], b\['labels'\]"):
        hessian_operator(model, data=dicts, loss="cross_entropy")
    calls = iter([SIZES, [35]])

    def changing():  # different batches on the second pass: the operator is not fixed
        sizes = next(calls)
        edges = np.cumsum([0, *sizes])
        return iter([(xt[a:b], yt[a:b]) for a, b in itertools.pairwise(edges)])

    op = hessian_operator(model, data=changing, loss="cross_entropy")
    with pytest.raises(DataError, match="changed between passes"):
        op @ v


def test_dask_chunks_are_batches_and_eigsh_counts_passes():
    da = pytest.importorskip("dask.array")
    model = three_models(torch_mlp(1))["arraynet"]
    x, y = _data("mse")
    chunks = (tuple(SIZES),)
    data = (da.from_array(x, chunks=(*chunks, (5,))), da.from_array(y, chunks=(*chunks, (3,))))
    op = ggn_operator(model, data=data, loss="mse")
    dense = np.asarray(ggn_operator(model, x, y, "mse") @ np.eye(model.num_params))
    res = linalg.eigsh(op, 3, tol=1e-10, seed=0)
    np.testing.assert_allclose(
        np.sort(np.asarray(res.values)), np.linalg.eigvalsh(dense)[-3:], rtol=1e-8
    )
    assert op.num_passes == res.num_matvecs  # one pass over the data per product
    with pytest.raises(DataError, match="chunked alike"):
        as_batches((data[0], da.from_array(y, chunks=((35,), (3,)))))


CHILD = r"""
import json, os, resource, sys
import torch
import specinterp as si
torch.set_num_threads(1)
mode, batch, nbatch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(16, 1024), torch.nn.Tanh(), torch.nn.Linear(1024, 10))
net = net.double().eval()

def make(i):  # batches generated on the fly: the dataset is never held in memory
    g = torch.Generator().manual_seed(i)
    return (torch.randn(batch, 16, generator=g, dtype=torch.float64),
            torch.randint(0, 10, (batch,), generator=g))

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if mode == "stream":
    before = rss()
    batches = lambda: (make(i) for i in range(nbatch))  # noqa: E731
    op = si.hessian_operator(net, data=batches, loss="cross_entropy")
else:
    parts = [make(i) for i in range(nbatch)]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    del parts
    before = rss()
    op = si.hessian_operator(net, x, y, "cross_entropy")
res = si.linalg.eigsh(op, 5, tol=1e-3, seed=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"extra": peak - before, "values": [float(v) for v in res.values]}))
"""


def _peak(mode, batch, nbatch):
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(batch), str(nbatch)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_streamed_top5_needs_one_batch_of_memory():
    # top-5 Hessian eigenvalues over 20 batches of 256 generated on the fly (a dataset 20× a
    # batch; held at once its activations would take ~20× one batch's, ~200 MB): the peak memory
    # above the start stays within 1.5× (+ 30 MB of Krylov vectors and allocator slack) of the
    # same computation on one batch. (Values: the products equal the concatenated operator's to
    # 1e-12 above; the in-memory run of all 20 batches is in the benchmarks.)
    pytest.importorskip("torch")
    one = _peak("memory", 256, 1)
    streamed = _peak("stream", 256, 20)
    assert streamed["extra"] <= 1.5 * one["extra"] + 30 * 2**20
    assert len(streamed["values"]) == 5 and min(streamed["values"]) > 0


def test_spread_across_batches_matches_the_known_one():
    # linear regression f(x) = w·x, loss ½(f − y)²: the batch Hessian is X_bᵀX_b / N_b, so
    # tr H_b = ‖X_b‖²_F / N_b with ‖X_b‖²_F ~ χ²(N_b d) for standard normal inputs: the
    # batch-to-batch sd of the trace is √(2d / N_b) exactly. Over 60 batches of 40 the reported
    # spread matches it within 3 of its own standard errors σ/√(2(K−1)); the full-data value is
    # the trace of the concatenated data's Hessian
    torch = pytest.importorskip("torch")
    from specinterp import curvature_spread

    d, nb, k = 12, 40, 60
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(nb * k, d, generator=gen, dtype=torch.float64)
    y = torch.randn(nb * k, 1, generator=gen, dtype=torch.float64)
    net = torch.nn.Linear(d, 1, bias=False).double()
    batches = [(x[i : i + nb], y[i : i + nb]) for i in range(0, nb * k, nb)]
    res = curvature_spread(net, batches, "mse", "trace")
    sigma = np.sqrt(2 * d / nb)
    assert res.num_batches == k and res.batch_values.shape == (k,)
    assert abs(float(res.spread) - sigma) <= 3 * sigma / np.sqrt(2 * (k - 1))
    assert float(res.value) == pytest.approx(float((x**2).sum() / (nb * k)), rel=1e-12)
    assert float(res.stderr) == pytest.approx(float(res.spread) / np.sqrt(k))
    top = curvature_spread(net, batches, "mse", "top_eigenvalues", k=3)
    whole = np.linalg.eigvalsh((x.T @ x / (nb * k)).numpy())[::-1][:3]
    np.testing.assert_allclose(top.value, whole, rtol=1e-8)
    assert top.spread.shape == (3,) and np.all(top.spread > 0)
    with pytest.raises(ValueError, match="two batches"):
        curvature_spread(net, batches[:1], "mse", "trace")


def test_dask_local_cluster_equals_one_process():
    # two worker processes hold the 7 batches (round-robin); the driver runs Lanczos and
    # Hutch++: top-5 Hessian eigenvalues and the trace equal one process's to 1e-12 (float64,
    # same seeds), one round trip per product, and the GGN's products equal too
    torch = pytest.importorskip("torch")
    distributed = pytest.importorskip("distributed")
    from specinterp.distributed import DistributedHessianOperator

    net = torch_mlp(1)
    x, y = _data("cross_entropy")
    batches = _split("torch", x, y)
    local = hessian_operator(net, data=batches, loss="cross_entropy")
    top_local = linalg.eigsh(local, 5, tol=1e-10, seed=0)
    tr_local = linalg.trace(local, method="hutch++", num_matvecs=30, seed=1)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = hessian_operator(net, data=batches, loss="cross_entropy", client=client)
        assert isinstance(remote, DistributedHessianOperator) and remote.num_samples == 35
        top = linalg.eigsh(remote, 5, tol=1e-10, seed=0)
        assert remote.num_rounds == top.num_matvecs
        rounds = remote.num_rounds
        tr = linalg.trace(remote, method="hutch++", num_matvecs=30, seed=1)
        assert remote.num_rounds - rounds == local.num_passes - top_local.num_matvecs
        v = torch.as_tensor(np.random.default_rng(4).standard_normal((local.shape[0], 2)))
        g_remote = ggn_operator(net, data=batches, loss="cross_entropy", client=client) @ v
        # a checkpoint sweep with the Dask client as its executor: the same table as in order
        from specinterp.checkpoints import checkpoint_sweep

        states = [torch_mlp(s).state_dict() for s in (1, 2)]
        kw = {"quantities": ("hessian_top", "jacobian_entropy"), "ntk_samples": 8}
        on_dask = checkpoint_sweep(net, states, batches, "cross_entropy", executor=client, **kw)
    in_order = checkpoint_sweep(net, states, batches, "cross_entropy", warm_start=False, **kw)
    for key in kw["quantities"]:
        np.testing.assert_allclose(on_dask.values[key], in_order.values[key], rtol=1e-10)
    np.testing.assert_allclose(top.values, top_local.values, rtol=1e-12)
    assert tr.estimate == pytest.approx(tr_local.estimate, rel=1e-12)
    g_local = ggn_operator(net, data=batches, loss="cross_entropy") @ v
    torch.testing.assert_close(g_remote, g_local, rtol=1e-12, atol=1e-15)


def test_mse_ggn_over_data_is_the_full_ntk_gram():
    # T5 over a dataset: the eigenvalues of (1/N) Σ G_iᵀG_i (the squared-error GGN, any
    # targets) are those of the NTK of all N samples divided by N
    from specinterp import ntk

    model = three_models(torch_mlp(1))["arraynet"]
    x, _ = _data("mse")
    targets = np.zeros((x.shape[0], 3))
    gram = ggn_operator(model, data=_split("arraynet", x, targets), loss="mse")
    dense = np.asarray(gram @ np.eye(model.num_params))
    lam_gram = np.linalg.eigvalsh((dense + dense.T) / 2)[::-1][:10]
    lam_ntk = np.linalg.eigvalsh(np.asarray(ntk(model, x)))[::-1][:10] / x.shape[0]
    np.testing.assert_allclose(lam_gram, lam_ntk, rtol=1e-10)


@pytest.mark.parametrize(
    ("framework", "by_products"), [("torch", False), ("arraynet", False), ("torch", True)]
)
def test_gmsi_over_data_is_the_gmsi_of_all_samples(framework, by_products, monkeypatch):
    # every component, entropy and condition number of the GMSI over 7 uneven batches equals
    # the dense GMSI of the concatenated data (float64): maxima and means over samples, the NTK
    # through its p × p Gram (T5), the dataset Hessian, β the largest over batches — from the
    # batches' dense G_b and H_b, or (where one would not fit) from p dataset products each
    from specinterp import gmsi, stability_index_data
    from specinterp.errors import MemoryBudgetError

    if by_products:

        def over_budget(*args, **kwargs):
            raise MemoryBudgetError("a batch's dense matrix over the budget (simulated)")

        monkeypatch.setattr(stability_index_data, "param_jacobian", over_budget)
        monkeypatch.setattr(stability_index_data, "hessian", over_budget)
    model = three_models(torch_mlp(1))[framework]
    x, y = _data("cross_entropy")
    whole = gmsi(model, convert(framework, x), convert(framework, y), method="dense")
    streamed = gmsi(model, data=_split(framework, x, y), method="dense")
    scope = whole.details["hessian_condition_over"]
    assert scope.startswith("all ") and scope.endswith("eigenvalues above p·eps·λ_max")
    assert streamed.details == {
        "samples": 35,
        "batches": 7,
        "hessian_condition_over": scope,
        "ntk_trace_error": 0.0,
        "entropy_error": {"ntk": 0.0, "hessian": 0.0, "jacobian": 0.0},
    }
    for key in whole.components:
        assert streamed.components[key] == pytest.approx(whole.components[key], rel=1e-9)
    for attr in ("typical", "entropies"):
        for key, want in getattr(whole, attr).items():
            assert getattr(streamed, attr)[key] == pytest.approx(want, rel=1e-9), (attr, key)
    assert streamed.beta == pytest.approx(whole.beta, rel=1e-12)
    assert streamed.hessian_condition_number == pytest.approx(
        whole.hessian_condition_number, rel=1e-6
    )
    # λ_min(K) is known to ±(N·C)·eps·λ_max from either dense eigensolver: κ to N·C·eps·κ
    kappa = whole.ntk_condition_number
    assert streamed.ntk_condition_number == pytest.approx(kappa, rel=105 * 2.3e-16 * kappa)
    assert streamed.value == pytest.approx(whole.value, rel=1e-9)
    if framework == "arraynet":  # the matrix-free route (few SLQ probes: entropies not checked)
        free = gmsi(
            model, data=_split(framework, x, y), method="matrix-free", num_probes=2, num_steps=8
        )
        for key in whole.components:  # Lanczos to 1e-8 on the Gram and the dataset Hessian
            assert free.components[key] == pytest.approx(whole.components[key], rel=1e-6)
        assert np.isnan(free.ntk_condition_number)  # N·C ≤ p: not computed matrix-free
    with pytest.raises(TypeError, match="not both"):
        gmsi(model, convert(framework, x), convert(framework, y), data=_split(framework, x, y))
