"""Losses and their output-space curvature, on any array namespace.

A loss is a :class:`Loss` object: per-sample losses ``ℓ_i`` of the outputs ``z`` (shape
``(N, *out)``, the model's own output shape) and targets ``y``, whose mean is the objective
``L = (1/N) Σ_i ℓ_i`` (:ref:`theory-objects`). What the operators need from a loss is its
output gradient ``∂ℓ_i/∂z_i`` and the product ``Λ_i dz_i`` with its output curvature
``Λ_i = ∇²_{z_i} ℓ_i`` — applied matrix-free, so a 50 000-word vocabulary costs ``O(N·T·V)``
memory, never ``O(N·T·V²)``.

Built-in losses (strings are accepted wherever a loss is):

``"mse"`` / :func:`mse`
    ``ℓ_i = ½‖z_i − y_i‖²`` over every output entry, ``Λ_i = I`` (``β_ℓ = 1``).
``"cross_entropy"`` / :func:`cross_entropy`
    Softmax cross-entropy over the *last* output axis with integer targets of shape
    ``(N, *out[:-1])`` — one label per sample for a classifier, one per token for a language
    model. Tokens whose label equals ``ignore_index`` are left out, and ``L`` is the mean over
    the remaining tokens, as ``torch.nn.functional.cross_entropy`` computes it: with ``M``
    kept tokens, ``ℓ_i = (N/M) Σ_t [y_it kept] (log Σ_v e^{z_itv} − z_{it y_it})`` and
    ``Λ_i = (N/M) ⊕_t [kept] (diag p_it − p_it p_itᵀ)`` (``β_ℓ ≤ N/(2M)``; ``½`` for a
    classifier).
``"bce_with_logits"`` / :func:`bce_with_logits`
    Independent Bernoulli likelihoods of every output logit, targets in ``[0, 1]`` of the
    outputs' shape: ``ℓ_i = Σ_j softplus(z_ij) − y_ij z_ij``, ``Λ_i = diag σ(z_i)(1 − σ(z_i))``
    (``β_ℓ = ¼``); ``L`` equals ``binary_cross_entropy_with_logits(z, y, reduction="sum")/N``.

A user loss is any callable ``loss(outputs, targets) -> (N,)`` per-sample losses written in the
model's framework (torch or JAX); :class:`CallableLoss` obtains its gradient and ``Λ`` products
by that framework's automatic differentiation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _xp
from .errors import DTypeError, LabelError, NamespaceMismatchError, ShapeError

Array = Any

__all__ = [
    "LOSSES",
    "MSE",
    "BCEWithLogits",
    "CallableLoss",
    "CrossEntropy",
    "Loss",
    "bce_with_logits",
    "check_loss",
    "check_targets",
    "cross_entropy",
    "get_loss",
    "loss_gradient",
    "loss_value",
    "mse",
    "output_hessian",
    "softmax",
]

LOSSES = ("mse", "cross_entropy", "bce_with_logits")


class Loss:
    """A per-sample loss ``ℓ(z_i, y_i)`` with its output gradient and curvature products.

    Subclasses implement :meth:`check`, :meth:`per_sample`, :meth:`gradient` and
    :meth:`apply_hessian`; outputs ``z`` always have the model's shape ``(N, *out)``.
    """

    name: str = "loss"
    #: ``β_ℓ = sup ‖Λ_i‖₂`` when the loss has a data-independent bound, else ``None``
    curvature_bound: float | None = None

    def check(self, z: Array, y: Array) -> None:
        """Raise a specific error unless ``y`` are usable targets for outputs ``z``."""
        raise NotImplementedError

    def per_sample(self, z: Array, y: Array) -> Array:
        """``ℓ_i``, shape ``(N,)``, whose mean is ``L``."""
        raise NotImplementedError

    def value(self, z: Array, y: Array) -> Array:
        """``L = (1/N) Σ_i ℓ_i`` (0-d array)."""
        xp = _xp.namespace(z)
        return xp.mean(self.per_sample(z, y))

    def gradient(self, z: Array, y: Array) -> Array:
        """``∂ℓ_i/∂z_i`` for every sample, shape of ``z`` (not divided by ``N``)."""
        raise NotImplementedError

    def apply_hessian(self, z: Array, y: Array, dz: Array) -> Array:
        """``Λ_i dz_i`` for every sample (shape of ``z``), without forming ``Λ``."""
        raise NotImplementedError

    def hessian(self, z: Array, y: Array) -> Array:
        """Dense ``Λ_i`` over the flattened outputs, ``(N, C, C)`` with ``C = prod(out)``.

        Built from ``C`` products :meth:`apply_hessian` — for small ``C`` only.
        """
        xp = _xp.namespace(z)
        n = int(z.shape[0])
        c = math.prod(z.shape[1:])
        eye = xp.eye(c, dtype=z.dtype, device=_xp.device(z))
        cols = [
            xp.reshape(
                self.apply_hessian(z, y, xp.reshape(xp.broadcast_to(eye[j, :], (n, c)), z.shape)),
                (n, c),
            )
            for j in range(c)
        ]
        return xp.stack(cols, axis=2)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _check_namespace(z: Array, y: Array) -> Any:
    xp = _xp.namespace(z)
    if not hasattr(y, "shape") or _xp.backend_name(_xp.namespace(y)) != _xp.backend_name(xp):
        raise NamespaceMismatchError(
            f"targets are {type(y).__module__.split('.')[0]} data but the model's outputs are "
            f"{_xp.backend_name(xp)} arrays; convert them explicitly to the model's library "
            "and device (e.g. torch.as_tensor(y, device=...), jax.numpy.asarray(y))"
        )
    return xp


def _check_like_outputs(loss: str, z: Array, y: Array) -> Any:
    xp = _check_namespace(z, y)
    if tuple(y.shape) != tuple(z.shape):
        raise ShapeError(
            f"targets for {loss} must have the outputs' shape {tuple(z.shape)}; got "
            f"{tuple(y.shape)}"
        )
    if y.dtype != z.dtype:
        raise DTypeError(
            f"{loss} targets have dtype {y.dtype} but the outputs {z.dtype}; cast one explicitly"
        )
    _xp.check_finite(y, xp, "targets")
    return xp


def _row_sum(a: Array, xp: Any) -> Array:
    """``Σ`` over every axis but the first (``(N,)``)."""
    return xp.sum(xp.reshape(a, (int(a.shape[0]), -1)), axis=1)


@dataclass(frozen=True)
class MSE(Loss):
    """``ℓ_i = ½‖z_i − y_i‖²`` over every output entry; ``Λ_i = I``."""

    name = "mse"
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


def softmax(z: Array) -> Array:
    """Softmax over the last axis, shifted by its maximum for stability."""
    xp = _xp.namespace(z)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


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
            hint = (
                ""
                if self.ignore_index is not None
                else " (to leave padded tokens out, pass loss=specinterp.losses.cross_entropy("
                "ignore_index=-100))"
            )
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


@dataclass(frozen=True)
class BCEWithLogits(Loss):
    """``ℓ_i = Σ_j softplus(z_ij) − y_ij z_ij`` with targets in ``[0, 1]``."""

    name = "bce_with_logits"
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


@dataclass(frozen=True, eq=False)
class CallableLoss(Loss):
    """A user loss ``fn(outputs, targets) -> (N,)`` in the model's framework (torch or JAX).

    Its gradient and ``Λ`` products come from that framework's automatic differentiation
    (forward-over-reverse for ``Λ dz``); ``Λ`` itself is never formed.
    """

    fn: Callable[[Array, Array], Array]
    name = "callable"

    def check(self, z: Array, y: Array) -> None:
        """Targets from the outputs' library; the callable returns ``(N,)``."""
        _check_namespace(z, y)
        out = self.fn(z, y)
        if not hasattr(out, "shape") or tuple(out.shape) != (int(z.shape[0]),):
            got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
            raise ShapeError(
                f"a loss callable must return per-sample losses of shape ({int(z.shape[0])},) "
                f"for outputs of shape {tuple(z.shape)}; got {got} — return the losses "
                "unreduced (e.g. reduction='none', summed over every axis but the first)"
            )

    def per_sample(self, z: Array, y: Array) -> Array:
        """``fn(z, y)``."""
        self.check(z, y)
        return self.fn(z, y)

    def gradient(self, z: Array, y: Array) -> Array:
        """``∂ℓ_i/∂z_i`` by the framework's reverse mode."""
        from specinterp.adapters._autodiff import output_gradient

        self.check(z, y)
        return output_gradient(self.fn, z, y)

    def apply_hessian(self, z: Array, y: Array, dz: Array) -> Array:
        """``Λ_i dz_i`` by the framework's forward-over-reverse mode."""
        from specinterp.adapters._autodiff import output_hvp

        return output_hvp(self.fn, z, y, dz)

    def __repr__(self) -> str:
        return f"CallableLoss({getattr(self.fn, '__qualname__', self.fn)!r})"


def mse() -> MSE:
    """The squared-error loss ``½‖z − y‖²`` (see the module docstring)."""
    return MSE()


def cross_entropy(*, ignore_index: int | None = None) -> CrossEntropy:
    """Softmax cross-entropy over the last output axis, optionally ignoring a label value."""
    return CrossEntropy(ignore_index=ignore_index)


def bce_with_logits() -> BCEWithLogits:
    """Binary cross-entropy of every output logit (see the module docstring)."""
    return BCEWithLogits()


_BY_NAME: dict[str, Callable[[], Loss]] = {
    "mse": MSE,
    "cross_entropy": CrossEntropy,
    "bce_with_logits": BCEWithLogits,
}


def get_loss(loss: str | Loss | Callable[[Array, Array], Array]) -> Loss:
    """A :class:`Loss` from a built-in name, a :class:`Loss`, or a per-sample loss callable."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in _BY_NAME:
            raise ValueError(
                f"loss must be one of {LOSSES}, a specinterp.losses.Loss, or a callable "
                f"loss(outputs, targets) -> per-sample losses; got {loss!r}"
            )
        return _BY_NAME[loss]()
    if callable(loss):
        return CallableLoss(loss)
    raise ValueError(
        f"loss must be one of {LOSSES}, a specinterp.losses.Loss, or a callable "
        f"loss(outputs, targets) -> per-sample losses; got {type(loss).__name__}"
    )


# ---------------------------------------------------------------------- functional forms
def check_loss(loss: Any) -> Loss:
    """The :class:`Loss` for ``loss``; raises ``ValueError`` for an unknown one."""
    return get_loss(loss)


def check_targets(z: Array, y: Array, loss: Any) -> None:
    """Raise a specific error unless ``y`` are usable targets for outputs ``z`` and ``loss``.

    Targets come from the outputs' library (no silent copies between libraries or devices);
    class labels are integers in ``[0, C)`` (or ``ignore_index``) — a label of ``C`` or
    ``−1`` would otherwise select no class and give a plausible wrong loss. Range and
    finiteness are checked where the values are concrete (not under ``jax.jit``).
    """
    get_loss(loss).check(z, y)


def loss_value(z: Array, y: Array, loss: Any) -> Array:
    """``L = (1/N) Σ_i ℓ(z_i, y_i)`` (0-d array)."""
    return get_loss(loss).value(z, y)


def loss_gradient(z: Array, y: Array, loss: Any) -> Array:
    """Per-sample ``∂ℓ/∂z_i`` (shape of ``z``; not divided by N)."""
    return get_loss(loss).gradient(z, y)


def output_hessian(z: Array, y: Array, loss: Any) -> Array:
    """Per-sample output curvature ``Λ_i``, ``(N, C, C)`` over the flattened outputs."""
    return get_loss(loss).hessian(z, y)


def apply_output_hessian(z: Array, y: Array, loss: Any, dz: Array) -> Array:
    """``Λ_i dz_i`` for every sample, without forming ``Λ`` (shape of ``z``)."""
    return get_loss(loss).apply_hessian(z, y, dz)
