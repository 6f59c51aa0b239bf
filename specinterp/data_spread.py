"""How much a curvature number moves between batches: error bars over data (:ref:`theory-data`).

A top Hessian eigenvalue computed on one batch is one draw of a random quantity: another batch
gives another value. :func:`curvature_spread` computes the quantity on the whole dataset
(the sample-weighted operator of :mod:`specinterp.data_operators`) and on every batch alone,
and reports the batch-to-batch standard deviation next to the full-data value, with the
batch-means standard error ``spread / √K`` — exact for a quantity that is linear in the
operator (the trace: ``tr H = Σ_b (N_b/N) tr H_b`` for equal batches), first-order for the
others (eigenvalues, entropy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import _xp
from .batches import as_batches
from .data_operators import DataGGNOperator, DataHessianOperator
from .entropy_estimates import entropy_from_values, slq_entropy
from .linalg import eigsh, trace
from .linalg.operator import LinearOperator
from .model import as_model
from .model_operators import GGNOperator, HessianOperator

__all__ = ["BatchSpread", "curvature_spread"]

Quantity = Literal["top_eigenvalues", "trace", "entropy"]


@dataclass(frozen=True)
class BatchSpread:
    """A curvature quantity on the whole data, with its spread across batches.

    Attributes
    ----------
    quantity : str
    value : ndarray
        On all the data (``(k,)`` for the top eigenvalues, ``()`` otherwise).
    batch_values : ndarray ``(K, …)``
        On each batch alone.
    spread : ndarray
        Standard deviation across batches (``ddof=1``): how far a one-batch value typically
        is from another's.
    stderr : ndarray
        ``spread / √K``, the batch-means standard error of the full-data value.
    num_batches : int

    """

    quantity: str
    value: np.ndarray
    batch_values: np.ndarray
    spread: np.ndarray
    stderr: np.ndarray
    num_batches: int


def _measure(
    op: LinearOperator, quantity: Quantity, k: int, tol: float, num_matvecs: int, seed: int
) -> np.ndarray:
    p = op.shape[0]
    if quantity == "top_eigenvalues":
        return np.asarray(_xp.to_numpy(eigsh(op, k, tol=tol, seed=seed).values), dtype=float)
    if p <= num_matvecs:  # p products give the matrix itself: exact
        a = _xp.to_numpy(op @ op.xp.eye(p, dtype=op.dtype, device=op.device))
        a = np.asarray(a, dtype=np.float64)
        if quantity == "trace":
            return np.asarray(float(np.trace(a)))
        return np.asarray(entropy_from_values(np.linalg.eigvalsh((a + a.T) / 2)))
    if quantity == "trace":
        return np.asarray(trace(op, num_matvecs=num_matvecs, seed=seed).estimate)
    return np.asarray(slq_entropy(op, num_probes=max(2, num_matvecs // 40), seed=seed).value)


def curvature_spread(
    model: Any,
    data: Any,
    loss: Any,
    quantity: Quantity = "top_eigenvalues",
    *,
    operator: Literal["hessian", "ggn"] = "hessian",
    k: int = 5,
    tol: float = 1e-6,
    num_matvecs: int = 200,
    seed: int = 0,
) -> BatchSpread:
    """A curvature quantity over all of ``data`` and its spread across the batches.

    Parameters
    ----------
    model
        Anything :func:`specinterp.as_model` accepts.
    data
        Batches, as :func:`specinterp.batches.as_batches` reads them; at least two.
    loss
        The loss (name or :class:`~specinterp.losses.Loss`).
    quantity : {"top_eigenvalues", "trace", "entropy"}
        Top-``k`` eigenvalues (Lanczos), the trace (exact when ``p ≤ num_matvecs``, XTrace
        otherwise), or the spectral entropy of ``|λ|`` (dense when ``p ≤ num_matvecs``, SLQ
        otherwise).
    operator : {"hessian", "ggn"}
    k, tol
        For the eigenvalues.
    num_matvecs : int
        Product budget of the trace / entropy estimators.
    seed : int
        Seeds every estimator (the same on each batch).

    Returns
    -------
    BatchSpread

    """
    if quantity not in ("top_eigenvalues", "trace", "entropy"):
        raise ValueError(f"quantity must be top_eigenvalues, trace or entropy; got {quantity!r}")
    if operator not in ("hessian", "ggn"):
        raise ValueError(f"operator must be 'hessian' or 'ggn'; got {operator!r}")
    model = as_model(model)
    batches = as_batches(data)
    whole_cls, batch_cls = (
        (DataHessianOperator, HessianOperator)
        if operator == "hessian"
        else (DataGGNOperator, GGNOperator)
    )
    whole = _measure(whole_cls(model, batches, loss), quantity, k, tol, num_matvecs, seed)
    per_batch = np.stack(
        [
            _measure(batch_cls(model, x, y, loss), quantity, k, tol, num_matvecs, seed)
            for x, y in batches
        ]
    )
    count = per_batch.shape[0]
    if count < 2:
        raise ValueError("a spread across batches needs at least two batches")
    spread = np.std(per_batch, axis=0, ddof=1)
    return BatchSpread(
        quantity=quantity,
        value=whole,
        batch_values=per_batch,
        spread=spread,
        stderr=spread / math.sqrt(count),
        num_batches=count,
    )
