"""The matrix-free ``*_operator`` constructors (:ref:`theory-notation`), from the Model protocol.

Each returns a named ``LinearOperator`` of :mod:`specinterp.model_operators` — or, for the
Hessian and the GGN of a loss over a whole dataset, of :mod:`specinterp.data_operators` and
:mod:`specinterp.distributed` — for :mod:`specinterp.linalg`. They are also importable from
:mod:`specinterp.operators`, beside the dense builders.
"""

from __future__ import annotations

from typing import Any

from ._guards import finite_result
from .batches import _is_dask, _is_pair
from .data_operators import DataGGNOperator, DataHessianOperator
from .distributed import DistributedGGNOperator, DistributedHessianOperator
from .model_operators import (
    GGNOperator,
    HessianOperator,
    InputJacobianOperator,
    NTKOperator,
    ParamJacobianOperator,
)

Array = Any

__all__ = [
    "ggn_operator",
    "hessian_operator",
    "input_jacobian_operator",
    "ntk_operator",
    "param_jacobian_operator",
]


def input_jacobian_operator(model: Any, x: Array) -> InputJacobianOperator:
    """The batch input Jacobian as a block-diagonal ``(N·C) × (N·d)`` operator (JVP / VJP).

    At token ids, ``d`` counts the embedding entries (:func:`specinterp.model.input_space`).
    """
    return InputJacobianOperator(model, x)


def param_jacobian_operator(model: Any, x: Array) -> ParamJacobianOperator:
    """The stacked parameter Jacobian ``G`` as an ``(N·C) × p`` operator (JVP / VJP)."""
    return ParamJacobianOperator(model, x)


def ntk_operator(model: Any, x: Array) -> NTKOperator:
    """The NTK ``K = G Gᵀ`` as a symmetric ``(N·C) × (N·C)`` operator: ``K u = G(Gᵀ u)``."""
    return NTKOperator(model, x)


def _batch_or_data(x: Any, y: Any, data: Any, loss: Any, what: str) -> tuple[Any, Any, Any]:
    """``(x, y, None)`` for one in-memory batch, ``(None, None, data)`` for a data source."""
    if loss is None:
        raise TypeError(f"{what} needs a loss: loss='cross_entropy', 'mse', … or a Loss")
    if data is not None:
        if x is not None or y is not None:
            raise TypeError(f"{what} takes either x, y or data=, not both")
        return None, None, data
    if x is None:
        raise TypeError(f"{what} needs x, y (one batch) or data= (batches)")
    if y is None:  # f(model, data, loss=...): x is the data
        if _is_pair(x) and not _is_dask(x[0]):
            return x[0], x[1], None
        return None, None, x
    return x, y, None


def _curvature_operator(
    what: str,
    kinds: tuple[type, type, type],
    model: Any,
    x: Any,
    y: Any,
    loss: Any,
    data: Any,
    client: Any,
) -> Any:
    """One batch, a dataset, or a dataset on a Dask client: ``kinds`` names the three classes."""
    one_batch, over_data, distributed = kinds
    x, y, data = _batch_or_data(x, y, data, loss, what)
    if data is not None:
        if client is not None:
            return distributed(model, data, loss, client)
        return over_data(model, data, loss)
    if client is not None:
        raise TypeError("client= distributes batches: pass the data as data=")
    return one_batch(model, x, y, loss)


@finite_result("model output")
def hessian_operator(
    model: Any,
    x: Any = None,
    y: Array | None = None,
    loss: Any = None,
    *,
    data: Any = None,
    client: Any = None,
) -> HessianOperator | DataHessianOperator:
    """The loss Hessian as a symmetric ``p × p`` operator of HVPs.

    Of one in-memory batch ``x, y``; or of the mean loss over a whole dataset given as
    ``data=`` (or in place of ``x`` with ``y`` omitted): a ``DataLoader``, a list of ``(x, y)``
    batches, a function returning a fresh iterable of them, Dask arrays
    (:func:`specinterp.batches.as_batches`). The dataset operator is the exact sample-weighted
    mean over the batches, one batch in memory at a time (:ref:`theory-data`). With
    ``client=`` (a ``dask.distributed.Client``) the batches are spread over its workers, each
    product one round of partial sums (:mod:`specinterp.distributed`); pass the model as the
    object you built (a torch module, an arraynet network, ``(apply_fn, params)``).
    """
    kinds = (HessianOperator, DataHessianOperator, DistributedHessianOperator)
    return _curvature_operator("hessian_operator", kinds, model, x, y, loss, data, client)


@finite_result("model output")
def ggn_operator(
    model: Any,
    x: Any = None,
    y: Array | None = None,
    loss: Any = None,
    *,
    data: Any = None,
    client: Any = None,
) -> GGNOperator | DataGGNOperator:
    """The GGN as a symmetric ``p × p`` operator: ``v ↦ (1/N) Gᵀ Λ G v``.

    ``Λ`` is applied matrix-free (for cross-entropy ``p ⊙ u − p⟨p, u⟩`` per token), so memory
    stays that of the outputs, ``O(N·T·V)``. Data as in :func:`hessian_operator`.
    """
    kinds = (GGNOperator, DataGGNOperator, DistributedGGNOperator)
    return _curvature_operator("ggn_operator", kinds, model, x, y, loss, data, client)
