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

from collections.abc import Callable
from typing import Any

from .base import Loss, softmax
from .builtin import MSE, BCEWithLogits, CrossEntropy
from .user import CallableLoss

Array = Any

__all__ = [
    "LOSSES",
    "MSE",
    "BCEWithLogits",
    "CallableLoss",
    "CrossEntropy",
    "Loss",
    "apply_output_hessian",
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
