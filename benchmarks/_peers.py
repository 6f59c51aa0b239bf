"""Peer objects shared by the benchmark cases (imported lazily: peers are optional)."""

from __future__ import annotations

from typing import Any


def curvlinops_hessian(net: Any, x: Any, y: Any = None) -> Any:
    """curvlinops' ``HessianLinearOperator`` of the mean cross-entropy of ``net``.

    On one batch ``x, y``, or on the batches of a loader given as ``x`` (``y`` omitted).
    Raises ImportError when curvlinops is not installed (see benchmarks/requirements.txt).
    """
    import torch
    from curvlinops import HessianLinearOperator

    return HessianLinearOperator(
        net,
        torch.nn.CrossEntropyLoss(),
        list(net.parameters()),
        x if y is None else [(x, y)],
        check_deterministic=False,
    )


def curvlinops_ggn(net: Any, x: Any, y: Any) -> Any:
    """curvlinops' ``GGNLinearOperator`` of the mean cross-entropy of ``net`` on one batch."""
    import torch
    from curvlinops import GGNLinearOperator

    return GGNLinearOperator(
        net,
        torch.nn.CrossEntropyLoss(),
        list(net.parameters()),
        [(x, y)],
        check_deterministic=False,
    )


def arpack_top5(
    hop: Any, tol: float = 1e-3, k: int = 5, one_thread: bool = False, seed: int = 0
) -> tuple[Any, int]:
    """Top-``k`` eigenvalues of a float32 torch operator by ARPACK at ``tol``, and its products.

    ``one_thread``: with NumPy's/SciPy's BLAS limited to one thread (``threadpoolctl``), so that
    ARPACK's basis updates stop contending with PyTorch's threads for the cores (docs:
    numerical guarantees, host threads).
    """
    if one_thread:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            return arpack_top5(hop, tol, k, seed=seed)
    import numpy as np
    import scipy.sparse.linalg as sla
    import torch

    count = [0]

    def mv(v: Any) -> Any:
        count[0] += 1
        return (hop @ torch.as_tensor(np.asarray(v, dtype=np.float32).ravel())).numpy()

    sop = sla.LinearOperator(hop.shape, matvec=mv, dtype=np.float32)
    v0 = np.random.default_rng(seed).standard_normal(hop.shape[0]).astype(np.float32)
    vals = sla.eigsh(sop, k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return vals, count[0]
