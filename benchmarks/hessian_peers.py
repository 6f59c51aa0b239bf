"""Hessian spectra against PyHessian and curvlinops + ARPACK (issue: performance, cases 1 & 3).

Case 1: top-5 Hessian eigenvalues; each method at its tolerance 1e-3, its relative error
against a converged reference (specinterp eigsh at tol 1e-10) reported with its HVP count and
wall time. Case 3: spectral density by SLQ, 1 probe × 90 steps, vs PyHessian ``density``.
Models: an MLP on 784 inputs and a small CNN on 3×32×32, batch 256, float32 (PyHessian draws
float32 probes), cross-entropy. HVPs are counted by wrapping each library's product.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse.linalg as sla
import torch

import specinterp as si

from ._peers import curvlinops_hessian


def _models():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    ).eval()
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 16 * 16, 10),
    ).eval()
    g = torch.Generator().manual_seed(1)
    yield "mlp-784-128-10", mlp, torch.randn(256, 784, generator=g)
    yield "cnn-3x32x32", cnn, torch.randn(256, 3, 32, 32, generator=g)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(repeats: int = 1) -> list[dict[str, object]]:
    rows = []
    for name, net, x in _models():
        y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(2))
        model = si.as_model(net)
        op = si.hessian_operator(model, x, y, "cross_entropy")
        ref = np.asarray(si.linalg.eigsh(op, 5, tol=1e-10, seed=0, max_iter=1000).values)

        def err(vals, ref=ref):
            vals = np.sort(np.asarray(vals, dtype=float))[::-1][:5]
            return float(np.max(np.abs(vals - ref) / np.abs(ref)))

        res, t = _timed(lambda op=op: si.linalg.eigsh(op, 5, tol=1e-3, seed=0))
        rows.append(
            {
                "case": "top5",
                "model": name,
                "method": "specinterp eigsh",
                "hvps": res.num_matvecs,
                "seconds": t,
                "rel_err": err(res.values),
            }
        )
        try:
            hop = curvlinops_hessian(net, x, y)
            count = [0]

            def mv(v, hop=hop, count=count):
                count[0] += 1
                return (
                    (hop @ torch.as_tensor(np.asarray(v, dtype=np.float32).ravel()))
                    .detach()
                    .numpy()
                )

            sop = sla.LinearOperator(hop.shape, matvec=mv, dtype=np.float32)
            v0 = np.random.default_rng(0).standard_normal(hop.shape[0]).astype(np.float32)
            vals, t = _timed(
                lambda sop=sop, v0=v0: sla.eigsh(
                    sop, 5, which="LA", tol=1e-3, v0=v0, return_eigenvectors=False
                )
            )
            rows.append(
                {
                    "case": "top5",
                    "model": name,
                    "method": "curvlinops + ARPACK",
                    "hvps": count[0],
                    "seconds": t,
                    "rel_err": err(vals),
                }
            )
        except ImportError:
            pass
        try:
            import importlib

            ph = importlib.import_module("pyhessian.hessian")  # the module, not the class

            count = [0]
            real = ph.hessian_vector_product

            def counted(*a, real=real, count=count):
                count[0] += 1
                return real(*a)

            ph.hessian_vector_product = counted
            torch.manual_seed(0)
            comp = ph.hessian(net, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
            count[0] = 0
            (vals, _), t = _timed(
                lambda comp=comp: comp.eigenvalues(maxIter=100, tol=1e-3, top_n=5)
            )
            rows.append(
                {
                    "case": "top5",
                    "model": name,
                    "method": "PyHessian",
                    "hvps": count[0],
                    "seconds": t,
                    "rel_err": err(vals),
                }
            )
            count[0] = 0
            try:
                _, t = _timed(lambda comp=comp: comp.density(iter=90, n_v=1))
                outcome = None
            except RuntimeError as exc:  # PyHessian 0.1 calls torch.eig (removed in torch)
                t, outcome = None, "failed: " + str(exc).splitlines()[0][:60]
            rows.append(
                {
                    "case": "slq_1x90",
                    "model": name,
                    "method": "PyHessian",
                    "hvps": count[0],
                    "seconds": t,
                    "rel_err": outcome,
                }
            )
            ph.hessian_vector_product = real
        except ImportError:
            pass
        dens, t = _timed(
            lambda op=op: si.linalg.spectral_density(op, num_probes=1, num_steps=90, seed=0)
        )
        rows.append(
            {
                "case": "slq_1x90",
                "model": name,
                "method": "specinterp SLQ",
                "hvps": dens.num_matvecs,
                "seconds": t,
                "rel_err": None,
            }
        )
    return rows
