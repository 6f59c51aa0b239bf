"""Dataset curvature on a Dask cluster: shards on the workers, the Krylov method on the driver.

:class:`DistributedHessianOperator` and :class:`DistributedGGNOperator` are the operators of
:mod:`specinterp.data_operators` with the batches spread over the workers of a
``dask.distributed.Client`` (:ref:`theory-data`). Each worker holds its shard of batches and
a copy of the model, scattered once; a product ``A V`` sends ``V`` to every worker, each
returns ``Σ_{b ∈ shard} N_b A_b V``, and the driver adds the partial sums and divides by
``N`` — one round trip per product (``num_rounds``). The sum is the same as one process's up to
the order of the additions.

The model travels as the object the user built (a torch module, an arraynet network, an
``(apply_fn, params)`` pair — anything :func:`specinterp.as_model` accepts and pickle can
carry); each worker wraps it once and keeps the adapter, so JAX compiles once per worker.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from . import _xp
from .batches import as_batches
from .data_operators import check_batch, ggn_batch_sum, hessian_batch_sum
from .linalg import LinearOperator
from .losses import get_loss
from .model import as_model

Array = Any

__all__ = ["DistributedGGNOperator", "DistributedHessianOperator"]

_ADAPTERS: dict[int, tuple[Any, Any]] = {}  # on a worker: id(model object) → (object, adapter)


def _adapter(model: Any) -> Any:
    hit = _ADAPTERS.get(id(model))
    if hit is None or hit[0] is not model:
        hit = (model, as_model(model))
        _ADAPTERS[id(model)] = hit
    return hit[1]


def _shard_sum(model: Any, shard: list[Any], v: np.ndarray, loss: Any, kind: str) -> np.ndarray:
    """On a worker: ``Σ_b N_b A_b V`` over its batches (``A_b`` the batch-mean operator)."""
    m = _adapter(model)
    product = hessian_batch_sum if kind == "hessian" else ggn_batch_sum
    va = m.xp.asarray(v, dtype=m.dtype, device=getattr(m, "device", None))
    total = None
    for x, y in shard:
        part = product(m, loss, x, y, va)
        total = part if total is None else total + part
    return np.asarray(_xp.to_numpy(total), dtype=np.float64)


class _DistributedOperator(LinearOperator):
    def __init__(
        self, model: Any, data: Any, loss: Any, client: Any, kind: Literal["hessian", "ggn"]
    ) -> None:
        local = as_model(model)
        batches = as_batches(data)
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise ValueError("the Dask client has no workers")
        shards: list[list[Any]] = [[] for _ in workers]
        lf = get_loss(loss)
        for i, (x, y) in enumerate(batches):  # checked here, once, then sent to its worker
            check_batch(local, lf, x, y)
            shards[i % len(workers)].append((x, y))
        self.num_samples = batches.num_samples
        self.num_batches = len(batches.sizes or [])
        self.num_rounds = 0
        self.client = client
        model_f = client.scatter(model, broadcast=True)
        placed = [
            (w, client.scatter(s, workers=[w])) for w, s in zip(workers, shards, strict=True) if s
        ]
        p, xp = local.num_params, local.xp
        device = getattr(local, "device", None)

        def matmat(v: Array) -> Array:
            self.num_rounds += 1
            host = np.asarray(_xp.to_numpy(v), dtype=np.float64)
            futures = [
                client.submit(_shard_sum, model_f, f, host, loss, kind, workers=[w], pure=False)
                for w, f in placed
            ]
            total = sum(client.gather(futures)) / self.num_samples
            return xp.asarray(total, dtype=local.dtype, device=device)

        super().__init__(
            (p, p),
            lambda v: matmat(xp.reshape(v, (p, 1)))[:, 0],
            matmat=matmat,
            symmetric=True,
            positive_semidefinite=kind == "ggn" and lf.convex,
            dtype=local.dtype,
            xp=xp,
            device=device,
        )


class DistributedHessianOperator(_DistributedOperator):
    """The dataset Hessian with its batches on the workers of a Dask ``client``."""

    def __init__(self, model: Any, data: Any, loss: Any, client: Any) -> None:
        super().__init__(model, data, loss, client, "hessian")


class DistributedGGNOperator(_DistributedOperator):
    """The dataset GGN with its batches on the workers of a Dask ``client``."""

    def __init__(self, model: Any, data: Any, loss: Any, client: Any) -> None:
        super().__init__(model, data, loss, client, "ggn")
