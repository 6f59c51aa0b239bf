"""Curvature of the loss over a whole dataset, one batch in memory at a time (:ref:`theory-data`).

For data in batches ``B_1, …, B_K`` of sizes ``N_1, …, N_K`` (``N = Σ N_b``) the loss of the
dataset is ``L = (1/N) Σ_i ℓ_i = Σ_b (N_b/N) L_b`` with ``L_b`` the mean loss of batch ``b``, so
its Hessian and Gauss–Newton matrix are the sample-weighted means

    H = Σ_b (N_b / N) H_b,      GGN = (1/N) Σ_b G_bᵀ Λ_b G_b,

exactly — whatever the batch sizes, the uneven last batch included. A product is one pass over
the batches (a block of vectors shares the pass: each batch is loaded once per product), with
one batch's inputs, outputs and products in memory.
"""

from __future__ import annotations

import math
from typing import Any

from .batches import Batches, as_batches
from .capabilities import ReusableHVP, use
from .errors import ShapeError
from .linalg import LinearOperator
from .losses import get_loss
from .model import Model, as_model
from .model_operators import natural_outputs

Array = Any

__all__ = [
    "DataGGNOperator",
    "DataHessianOperator",
    "check_batch",
    "ggn_batch_sum",
    "hessian_batch_sum",
]


def check_batch(model: Model, loss: Any, x: Array, y: Array) -> None:
    """The checks a batch passes before any product: inputs, one output row each, targets."""
    model.check_input(x)
    z = natural_outputs(model, x)
    if int(z.shape[0]) != int(x.shape[0]):
        raise ShapeError("model outputs must have one row per sample")
    loss.check(z, y)


class _DataOperator(LinearOperator):
    """A symmetric ``p × p`` operator ``Σ_b w_b A_b`` over the batches of a dataset."""

    def __init__(self, model: Any, data: Any, loss: Any, *, psd: bool) -> None:
        self.model: Model = as_model(model)
        self.data: Batches = as_batches(data)
        self.loss = get_loss(loss)
        self._loss_spec = loss
        self.num_passes = 0
        m, xp = self.model, self.model.xp
        for x, y in self.data:  # one checking pass: inputs, targets, and the batch sizes
            check_batch(m, self.loss, x, y)
        self.num_batches = len(self.data.sizes or [])
        self.num_samples = self.data.num_samples
        p = m.num_params

        def matmat(v: Array) -> Array:
            self.num_passes += 1
            total = xp.zeros((p, int(v.shape[1])), dtype=m.dtype, device=getattr(m, "device", None))
            for x, y in self.data:
                total = total + self._batch_products(x, y, v)
            return total / self.num_samples

        super().__init__(
            (p, p),
            lambda v: matmat(xp.reshape(v, (p, 1)))[:, 0],
            matmat=matmat,
            symmetric=True,
            positive_semidefinite=psd,
            dtype=m.dtype,
            xp=xp,
            device=getattr(m, "device", None),
        )

    def _batch_products(self, x: Array, y: Array, v: Array) -> Array:  # pragma: no cover
        raise NotImplementedError


def hessian_batch_sum(model: Model, loss: Any, x: Array, y: Array, v: Array) -> Array:
    """``N_b H_b V`` for one batch (``H_b`` the Hessian of its mean loss), ``V`` of shape (p, k)."""
    xp = model.xp
    try:  # the adapter's work-reusing product, built per batch and dropped after it
        mv = use(model, ReusableHVP, x, y, loss)
    except NotImplementedError:

        def mv(u: Array) -> Array:
            return model.hvp(x, y, u, loss)

    cols = [mv(v[:, j]) for j in range(int(v.shape[1]))]
    return xp.stack(cols, axis=1) * int(x.shape[0])


def ggn_batch_sum(model: Model, loss: Any, x: Array, y: Array, v: Array) -> Array:
    """``G_bᵀ Λ_b G_b V`` for one batch (the sum over its samples), ``V`` of shape (p, k)."""
    xp, lf = model.xp, get_loss(loss)
    z = natural_outputs(model, x)
    n, c = int(z.shape[0]), math.prod(z.shape[1:])
    cols = []
    for j in range(int(v.shape[1])):
        dz = xp.reshape(model.jvp_params(x, v[:, j]), tuple(z.shape))
        cols.append(model.vjp_params(x, xp.reshape(lf.apply_hessian(z, y, dz), (n, c))))
    return xp.stack(cols, axis=1)


class DataHessianOperator(_DataOperator):
    """The Hessian of the mean loss over every sample of ``data``, ``p × p``.

    ``H v = Σ_b (N_b/N) H_b v``, ``H_b v`` the model's Hessian-vector product on batch ``b``.
    ``num_passes`` counts the passes over the data (one per product, blocks included).
    """

    def __init__(self, model: Any, data: Any, loss: Any) -> None:
        super().__init__(model, data, loss, psd=False)

    def _batch_products(self, x: Array, y: Array, v: Array) -> Array:
        return hessian_batch_sum(self.model, self._loss_spec, x, y, v)


class DataGGNOperator(_DataOperator):
    """The generalised Gauss–Newton matrix of the mean loss over every sample of ``data``.

    ``GGN v = (1/N) Σ_b G_bᵀ Λ_b G_b v``; positive semi-definite for a convex loss.
    """

    def __init__(self, model: Any, data: Any, loss: Any) -> None:
        super().__init__(model, data, loss, psd=get_loss(loss).convex)

    def _batch_products(self, x: Array, y: Array, v: Array) -> Array:
        return ggn_batch_sum(self.model, self._loss_spec, x, y, v)
