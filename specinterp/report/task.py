"""Which loss the report reads off the targets, and the targets that loss is given.

* integer labels with at least two logits per sample (or per token): cross-entropy, with
  PyTorch's padding label ``-100`` left out of the loss and the accuracy;
* labels 0/1 with one logit per sample — a binary classifier (scikit-learn's ``MLPClassifier``
  on two classes, a torch ``Linear(d, 1)`` head): the binary cross-entropy with logits, the
  labels as that one column in the outputs' dtype; accuracy counts ``logit > 0`` as class 1;
* labels 0/1 of the outputs' shape — a multi-label classifier, or a binary one whose logits
  are squeezed to ``(N,)``: the same loss on every output, the labels in the outputs' dtype;
  accuracy is the fraction of samples with every label right (scikit-learn's ``score``);
* real targets: the squared error; targets ``(N,)`` for outputs ``(N, 1)`` (a one-output
  regressor, as scikit-learn writes them) are that one column. Real targets shaped like labels
  for two or more outputs (class labels saved as floats) are refused with the fix.

Each conversion is exact (a reshape, or 0/1 to floating point); every other mismatch reaches
the loss's own checks and their messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _xp
from ..errors import DTypeError
from ..losses import cross_entropy

__all__ = ["IGNORE_INDEX", "Task", "task_for"]

#: targets with this label (PyTorch's ``ignore_index`` default: padding) are left out
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Task:
    """The report's loss and how the given targets map to the ones it reads."""

    #: ``"cross_entropy"``, ``"bce_with_logits"`` or ``"mse"``
    loss_name: str
    #: per-token labels of a sequence model (``(N, T)`` for outputs ``(N, T, V)``)
    sequence: bool = False
    #: targets ``(N,)`` read as the single output column ``(N, 1)``
    column: bool = False
    #: some labels are the padding label ``IGNORE_INDEX``
    padded: bool = False

    @property
    def loss(self) -> Any:
        """The loss to hand to the analyses (a name, or the padding-aware cross-entropy)."""
        return cross_entropy(ignore_index=IGNORE_INDEX) if self.padded else self.loss_name

    def targets(self, y: Any, outputs: Any) -> Any:
        """``y`` as the loss reads it: itself or its one column, as floats for the BCE."""
        xp = _xp.namespace(y)
        if self.column:
            y = xp.reshape(y, (int(y.shape[0]), 1))
        return xp.astype(y, outputs.dtype) if self.loss_name == "bce_with_logits" else y

    def accuracy(self, logits: np.ndarray, y: np.ndarray) -> float | None:
        """The fraction of samples (tokens) predicted as labelled (``None`` for regression)."""
        if self.loss_name == "bce_with_logits":
            hits = (logits > 0) == (np.reshape(y, logits.shape) == 1)
            return float(np.mean(np.all(np.reshape(hits, (len(hits), -1)), axis=1)))
        if self.loss_name != "cross_entropy":
            return None
        kept = y != IGNORE_INDEX
        hits = np.argmax(logits, axis=-1) == y
        return float(np.mean(hits[kept])) if kept.any() else None


def task_for(y: np.ndarray, out_shape: tuple[int, ...], n: int) -> Task:
    """The task of targets ``y`` (host) for ``n`` samples of per-sample output ``out_shape``."""
    column = tuple(out_shape) == (1,) and tuple(y.shape) == (n,)
    if np.issubdtype(y.dtype, np.integer):
        binary = bool(np.isin(y, (0, 1)).all())
        if column and binary:
            return Task("bce_with_logits", column=True)
        if binary and len(out_shape) <= 1 and tuple(y.shape) == (n, *out_shape):
            return Task("bce_with_logits")  # multi-label, or one logit per sample squeezed
        sequence = len(out_shape) >= 2 and tuple(y.shape) == (n, *out_shape[:-1])
        return Task("cross_entropy", sequence=sequence, padded=bool((y == IGNORE_INDEX).any()))
    labels_shape = len(out_shape) >= 1 and tuple(y.shape) == (n, *out_shape[:-1])
    if labels_shape and int(out_shape[-1]) >= 2:
        raise DTypeError(
            f"the targets have shape {tuple(y.shape)} and dtype {y.dtype}, but the model gives "
            f"{out_shape[-1]} outputs per sample: class labels must be integers — save them with "
            f"y.astype(int) (real-valued targets need the outputs' shape {(n, *out_shape)})"
        )
    return Task("mse", column=column)
