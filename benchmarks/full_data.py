"""Full-data Hessian top-5 through a data loader: specinterp vs PyHessian vs curvlinops.

The MLP 784-128-10 trained on MNIST-5k (``benchmarks._nets``), float32, and all 5000 images
in a ``DataLoader`` of batch 500 (10 batches). Every method computes the top-5 eigenvalues of
the Hessian of the mean cross-entropy over all 5000 images, one batch in memory at a time:
specinterp ``eigsh`` on ``hessian_operator(net, data=loader)``; PyHessian's data-loader mode
(power iteration with deflation, ``tol`` 1e-3 and 1e-4); curvlinops' ``HessianLinearOperator``
over the same loader with ``scipy.sparse.linalg.eigsh`` (ARPACK). The error is against a
float64 reference (specinterp at tol 1e-10 on a float64 copy over all 5000 images held as one
batch). "passes" counts passes over the data (one per product; PyHessian and curvlinops make
one per vector).

Then the same specinterp computation on a two-worker Dask ``LocalCluster`` (each worker holds
5 of the batches) against one process: on this 2-core machine the driver and both workers share
the cores, so the ratio says what the round trips cost more than what a cluster gains.
"""

from __future__ import annotations

import copy
import importlib
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import specinterp as si

from ._nets import trained
from ._peers import arpack_top5, curvlinops_hessian

BATCH = 500


def _reference(net, x, y):
    net64 = copy.deepcopy(net).double()
    op = si.hessian_operator(net64, x.double(), y, "cross_entropy")
    return np.asarray(si.linalg.eigsh(op, 5, tol=1e-10, seed=0, max_iter=500).values)


def _specinterp(net, loader, client=None):
    op = si.hessian_operator(net, data=loader, loss="cross_entropy", client=client)
    res = si.linalg.eigsh(op, 5, tol=1e-3, seed=0)
    passes = op.num_rounds if client is not None else op.num_passes
    return np.asarray(res.values), passes


def _pyhessian(net, loader, tol):
    mod = importlib.import_module("pyhessian.hessian")
    torch.manual_seed(0)
    comp = mod.hessian(net, torch.nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
    count = [0]
    real = comp.dataloader_hv_product

    def counted(v):
        count[0] += 1
        return real(v)

    comp.dataloader_hv_product = counted
    vals, _ = comp.eigenvalues(maxIter=1000, tol=tol, top_n=5)
    for p in net.parameters():
        p.grad = None
    return np.asarray(vals), count[0]


def _curvlinops(net, loader, one_thread=False):
    return arpack_top5(curvlinops_hessian(net, loader), one_thread=one_thread)


def _timed(fn):
    t0 = time.perf_counter()
    vals, passes = fn()
    return time.perf_counter() - t0, np.sort(np.asarray(vals, dtype=float))[::-1], passes


def run(repeats: int = 1) -> list[dict[str, object]]:
    """One timed run per method (each takes seconds to minutes)."""
    del repeats
    torch.set_num_threads(2)
    bench = trained("mlp-784-128-10")
    net, x, y = bench.net, bench.x, bench.y
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH)
    ref = np.sort(_reference(net, x, y))[::-1]
    cands = {"specinterp eigsh (loader)": lambda: _specinterp(net, loader)}
    try:
        importlib.import_module("curvlinops")
        cands["curvlinops + ARPACK (loader)"] = lambda: _curvlinops(net, loader)
        cands["curvlinops + ARPACK (loader), 1 BLAS thread"] = lambda: _curvlinops(
            net, loader, one_thread=True
        )
    except ImportError:
        pass
    try:
        importlib.import_module("pyhessian.hessian")
        for tol in (1e-3, 1e-4):
            cands[f"PyHessian dataloader tol={tol:g}"] = lambda tol=tol: _pyhessian(
                net, loader, tol
            )
    except ImportError:
        pass
    rows: list[dict[str, object]] = []
    for name, fn in cands.items():
        secs, vals, passes = _timed(fn)
        rows.append(
            {
                "case": "full_data_top5",
                "samples": int(x.shape[0]),
                "method": name,
                "passes": passes,
                "seconds": secs,
                "max rel. error": float(np.max(np.abs(vals - ref) / np.abs(ref))),
            }
        )
    ours = rows[0]["seconds"]
    for r in rows:
        r["time ratio (this / specinterp)"] = r["seconds"] / ours
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return rows
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        secs, vals, passes = _timed(lambda: _specinterp(net, loader, client))
    rows.append(
        {
            "case": "full_data_top5",
            "samples": int(x.shape[0]),
            "method": "specinterp, Dask LocalCluster 2 workers",
            "passes": passes,
            "seconds": secs,
            "max rel. error": float(np.max(np.abs(vals - ref) / np.abs(ref))),
            "time ratio (this / specinterp)": secs / ours,
        }
    )
    return rows
