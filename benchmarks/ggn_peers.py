"""GGN top-5 eigenvalues of case 1's MLPs and CNNs against curvlinops + ARPACK.

specinterp ``eigsh`` on ``ggn_operator`` — with the missed-eigenvalue check (the default) and
without it (``verify=False``) — at tolerance 1e-2, and the same ``eigsh`` with the GGN taken by
the model's Jacobian products (the route of every module that is not an ``nn.Sequential`` layer
stack: ``jvp`` then ``vjp``; the layer-wise sweeps and the compression switched off), against
curvlinops' ``GGNLinearOperator`` with ``scipy.sparse.linalg.eigsh`` (ARPACK, one BLAS thread)
at 1e-3. Error: the largest relative error against the whole operator's eigenvalues in float64
at tolerance 1e-10. Batch 256, float32, cross-entropy. Each repeat takes the next seed for
every method (:class:`.hessian_peers.Seeded`): medians of time and products, the largest error.
"""

from __future__ import annotations

import copy

import numpy as np
from specinterp.adapters import _torch_curvature

import specinterp as si

from ._nets import CNN_SIZES, MLP_SIZES, trained
from ._peers import arpack_top5, curvlinops_ggn
from ._timing import interleaved_runs
from .hessian_peers import Seeded, whole_operator


def _reference(net, x, y):
    net64 = copy.deepcopy(net).double()
    op = si.ggn_operator(si.as_model(net64), x.double(), y, "cross_entropy")
    res = si.linalg.eigsh(whole_operator(op), 5, tol=1e-10, seed=0, max_iter=500)
    return np.asarray(res.values)


def _specinterp(net, x, y, verify=True, routes=True, seed=0):
    curvature = _torch_curvature.TorchCurvature
    saved = curvature.gauss_newton_operator, curvature.compressed_curvature
    if not routes:  # the Jacobian-product GGN every other module takes

        def unavailable(*args, **kwargs):
            raise NotImplementedError

        curvature.gauss_newton_operator = curvature.compressed_curvature = unavailable
    try:
        op = si.ggn_operator(si.as_model(net), x, y, "cross_entropy")
        res = si.linalg.eigsh(op, 5, tol=1e-2, seed=seed, verify=verify)
    finally:
        curvature.gauss_newton_operator, curvature.compressed_curvature = saved
    return np.asarray(res.values), res.num_matvecs


def run(repeats: int = 5) -> list[dict[str, object]]:
    return [row for name in (*MLP_SIZES, *CNN_SIZES) for row in _case(name, repeats)]


def _case(name: str, repeats: int) -> list[dict[str, object]]:
    bench = trained(name)
    net, (x, y) = bench.net, bench.batch(256)
    ref = _reference(net, x, y)
    cands = {
        "specinterp eigsh": Seeded(lambda seed: _specinterp(net, x, y, seed=seed)),
        "specinterp eigsh verify=False": Seeded(
            lambda seed: _specinterp(net, x, y, verify=False, seed=seed)
        ),
        "specinterp eigsh, Jacobian-product GGN": Seeded(
            lambda seed: _specinterp(net, x, y, routes=False, seed=seed)
        ),
    }
    try:
        curvlinops_ggn(net, x, y)
        cands["curvlinops + ARPACK, 1 BLAS thread"] = Seeded(
            lambda seed: arpack_top5(curvlinops_ggn(net, x, y), 1e-3, one_thread=True, seed=seed)
        )
    except ImportError:
        pass
    runs = interleaved_runs(cands, repeats=repeats)
    peer = runs.get("curvlinops + ARPACK, 1 BLAS thread")
    rows: list[dict[str, object]] = []
    for method, (secs, _) in runs.items():
        err, products = cands[method].summary(ref)
        row = {"case": "1b GGN top-5 eigenvalues", "model": name, "params": bench.num_params}
        row |= {"method": method, "products": products, "median_s": secs, "rel_err": err}
        if peer is not None:
            row["ARPACK time / this"] = peer[0] / secs
        rows.append(row)
    return rows
