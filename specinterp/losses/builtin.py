"""The built-in losses: squared error, softmax cross-entropy (per token), binary cross-entropy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import _xp
from ..errors import DTypeError, LabelError, ShapeError
from .base import Loss, _check_like_outputs, _check_namespace, _row_sum, softmax

Array = Any

__all__ = ["MSE", "BCEWithLogits", "CrossEntropy"]


@dataclass(frozen=True)
class MSE(Loss):
    """``ℓ_i = ½‖z_i − y_i‖²`` over every output entry; ``Λ_i = I``."""

    name = "mse"
    convex = True
    curvature_bound = 1.0

    def check(self, z: Array, y: Array) -> None:
        """Targets of the outputs' shape and dtype, finite."""
        _check_like_outputs("mse", z, y)

    def per_sample(self, z: Array, y: Array) -> Array:
        """``½‖z_i − y_i‖²``."""
        self.check(z, y)
        xp = _xp.namespace(z)
        return 0.5 * _row_sum((z - y) ** 2, xp)

    def gradient(self, z: Array, y: Array) -> Array:
        """``z − y``."""
        self.check(z, y)
        return z - y

    def apply_hessian(self, z: Array, y: Array, dz: Array) -> Array:
        """``dz``."""
        return dz

    def hessian_at(self, z: Array, y: Array) -> Callable[[Array], Array]:
        """The identity."""
        self.check(z, y)
        return lambda dz: dz


@dataclass(frozen=True)
class CrossEntropy(Loss):
    """Softmax cross-entropy over the last output axis, mean over the kept tokens.

    Parameters
    ----------
    ignore_index : int, optional
        A label value whose tokens are left out (``-100`` is the Hugging Face convention for
        padding); by default every label must be a class index.

    """

    ignore_index: int | None = None
    name = "cross_entropy"
    convex = True

    @property
    def curvature_bound(self) -> float | None:  # type: ignore[override]
        """``½`` per token; with ignored tokens it depends on the batch (``N/(2M)``)."""
        return 0.5 if self.ignore_index is None else None

    def check(self, z: Array, y: Array) -> None:
        """Integer labels of shape ``(N, *out[:-1])`` in ``[0, V)`` or equal to ``ignore_index``."""
        xp = _check_namespace(z, y)
        if z.ndim < 2:
            raise ShapeError(
                f"cross_entropy needs class logits on the last output axis; the outputs have "
                f"shape {tuple(z.shape)} — for one logit per sample use bce_with_logits"
            )
        want = tuple(z.shape[:-1])
        if tuple(y.shape) != want:
            raise ShapeError(
                f"targets for cross_entropy must have shape {want} (the outputs {tuple(z.shape)} "
                f"without their last, class axis); got {tuple(y.shape)}"
            )
        v = int(z.shape[-1])
        if not xp.isdtype(y.dtype, "integral"):
            raise DTypeError(
                f"cross_entropy needs integer class labels in [0, {v}); got dtype {y.dtype} — "
                "convert labels with an integer cast (one-hot rows: take their argmax)"
            )
        if self.ignore_index is None:
            keep, labels = None, y
        else:
            keep = y != self.ignore_index
            labels = xp.where(keep, y, xp.zeros_like(y))
            if _xp.concrete_bool(~xp.any(keep)):
                raise LabelError(
                    f"every target equals ignore_index={self.ignore_index}; the loss is undefined"
                )
        lo, hi = xp.min(labels), xp.max(labels)
        if _xp.concrete_bool((lo < 0) | (hi >= v)):
            if v == 1:  # labels 0/1 for one logit: a binary classifier
                hint = (
                    " — one logit per sample is a binary classifier: use loss='bce_with_logits' "
                    "with the labels as that column, as floats (y[..., None] in the outputs' dtype)"
                )
            elif self.ignore_index is None:
                hint = (
                    " (to leave padded tokens out, pass loss=specinterp.losses.cross_entropy("
                    "ignore_index=-100))"
                )
            else:
                hint = ""
            raise LabelError(
                f"class labels must lie in [0, {v - 1}] for {v} classes; got labels from "
                f"{int(lo)} to {int(hi)} (a label outside selects no class){hint}"
            )

    def _parts(self, z: Array, y: Array) -> tuple[Any, Array, Array, Array]:
        """Namespace, safe labels, kept-token mask and the weight ``N/M`` (0-d)."""
        self.check(z, y)
        xp = _xp.namespace(z)
        if self.ignore_index is None:
            mask = xp.ones(tuple(y.shape), dtype=z.dtype, device=_xp.device(z))
            labels = y
        else:
            keep = y != self.ignore_index
            mask = xp.astype(keep, z.dtype)
            labels = xp.where(keep, y, xp.zeros_like(y))
        n = int(z.shape[0])
        weight = n / xp.sum(mask)
        return xp, labels, mask, weight

    @staticmethod
    def _one_hot(labels: Array, like: Array, xp: Any) -> Array:
        classes = xp.arange(int(like.shape[-1]), device=_xp.device(like))
        return xp.astype(labels[..., None] == classes, like.dtype)

    def per_sample(self, z: Array, y: Array) -> Array:
        """``(N/M) Σ_t [kept] (logsumexp z_it − z_{it y_it})``."""
        xp, labels, mask, weight = self._parts(z, y)
        m = xp.max(z, axis=-1, keepdims=True)
        lse = m[..., 0] + xp.log(xp.sum(xp.exp(z - m), axis=-1))
        picked = xp.sum(z * self._one_hot(labels, z, xp), axis=-1)
        return weight * _row_sum(mask * (lse - picked), xp)

    def gradient(self, z: Array, y: Array) -> Array:
        """``(N/M) [kept] (softmax z_it − e_{y_it})``."""
        xp, labels, mask, weight = self._parts(z, y)
        return weight * mask[..., None] * (softmax(z) - self._one_hot(labels, z, xp))

    def apply_hessian(self, z: Array, y: Array, dz: Array) -> Array:
        """``(N/M) [kept] (p ⊙ dz − p ⟨p, dz⟩)`` per token: ``O(N·T·V)`` memory."""
        xp, _, mask, weight = self._parts(z, y)
        p = softmax(z)
        return weight * mask[..., None] * (p * dz - p * xp.sum(p * dz, axis=-1, keepdims=True))

    def hessian_at(self, z: Array, y: Array) -> Callable[[Array], Array]:
        """``dz ↦ s ⊙ (dz − ⟨p, dz⟩)`` with ``s = (N/M) [kept] p`` computed once."""
        xp, _, mask, weight = self._parts(z, y)
        p = softmax(z)
        s = weight * mask[..., None] * p
        return lambda dz: s * (dz - xp.sum(p * dz, axis=-1, keepdims=True))


@dataclass(frozen=True)
class BCEWithLogits(Loss):
    """``ℓ_i = Σ_j softplus(z_ij) − y_ij z_ij`` with targets in ``[0, 1]``."""

    name = "bce_with_logits"
    convex = True
    curvature_bound = 0.25

    def check(self, z: Array, y: Array) -> None:
        """Targets of the outputs' shape and dtype, in ``[0, 1]``."""
        xp = _check_like_outputs("bce_with_logits", z, y)
        if _xp.concrete_bool(xp.any((y < 0) | (y > 1))):
            raise LabelError("bce_with_logits targets are probabilities; they must lie in [0, 1]")

    def per_sample(self, z: Array, y: Array) -> Array:
        """``Σ_j max(z, 0) − y z + log(1 + e^{−|z|})`` (stable softplus)."""
        self.check(z, y)
        xp = _xp.namespace(z)
        softplus = xp.maximum(z, xp.zeros_like(z)) + xp.log1p(xp.exp(-xp.abs(z)))
        return _row_sum(softplus - y * z, xp)

    @staticmethod
    def _sigmoid(z: Array) -> Array:
        xp = _xp.namespace(z)
        e = xp.exp(-xp.abs(z))
        return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def gradient(self, z: Array, y: Array) -> Array:
        """``σ(z) − y``."""
        self.check(z, y)
        return self._sigmoid(z) - y

    def apply_hessian(self, z: Array, y: Array, dz: Array) -> Array:
        """``σ(z)(1 − σ(z)) ⊙ dz``."""
        s = self._sigmoid(z)
        return s * (1.0 - s) * dz

    def hessian_at(self, z: Array, y: Array) -> Callable[[Array], Array]:
        """``dz ↦ σ(z)(1 − σ(z)) ⊙ dz`` with the weights computed once."""
        self.check(z, y)
        s = self._sigmoid(z)
        weights = s * (1.0 - s)
        return lambda dz: weights * dz
