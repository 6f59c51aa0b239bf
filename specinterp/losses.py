"""The built-in losses of SPEC §0, on any array namespace.

``"mse"``: ``ℓ(z, y) = ½‖z − y‖²`` with output curvature ``Λ = I`` (``β_ℓ = 1``).
``"cross_entropy"``: ``ℓ(z, y) = −log softmax(z)_y`` with integer labels and
``Λ = diag(p) − p pᵀ`` (``β_ℓ ≤ ½``). ``L`` is always the mean over the batch.
"""

from __future__ import annotations

from typing import Any, Literal

from . import _xp
from .errors import DTypeError, LabelError, NamespaceMismatchError, ShapeError

Array = Any
LossName = Literal["mse", "cross_entropy"]

__all__ = [
    "LOSSES",
    "check_loss",
    "check_targets",
    "loss_gradient",
    "loss_value",
    "output_hessian",
    "softmax",
]

LOSSES = ("mse", "cross_entropy")


def check_loss(loss: str) -> str:
    """Return ``loss`` if it is a built-in loss name, else raise a ``ValueError``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
    return loss


def softmax(z: Array) -> Array:
    """Row-wise softmax, shifted by the row maximum for stability."""
    xp = _xp.namespace(z)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def _one_hot(y: Array, num_classes: int, like: Array) -> Array:
    xp = _xp.namespace(like)
    classes = xp.arange(num_classes, device=_xp.device(like))
    return xp.astype(y[:, None] == classes[None, :], like.dtype)


def check_targets(z: Array, y: Array, loss: str) -> None:
    """Raise a specific error unless ``y`` are usable targets for outputs ``z`` and ``loss``.

    Targets must come from the outputs' library (no silent copies between libraries or
    devices) with one row per sample; ``cross_entropy`` labels must be integers in
    ``[0, C)`` — a label of ``C`` or ``−1`` would otherwise select no class and give a
    plausible wrong loss — and ``mse`` targets finite and of the outputs' dtype. Range and
    finiteness are checked where the values are concrete (not under ``jax.jit``).
    """
    check_loss(loss)
    if z.ndim != 2:
        raise ShapeError(f"model outputs must have shape (N, C); got {tuple(z.shape)}")
    xp = _xp.namespace(z)
    if not hasattr(y, "shape") or _xp.backend_name(_xp.namespace(y)) != _xp.backend_name(xp):
        raise NamespaceMismatchError(
            f"targets are {type(y).__module__.split('.')[0]} data but the model's outputs are "
            f"{_xp.backend_name(xp)} arrays; convert them explicitly to the model's library "
            "and device (e.g. torch.as_tensor(y, device=...), jax.numpy.asarray(y))"
        )
    n, c = int(z.shape[0]), int(z.shape[1])
    want = (n,) if loss == "cross_entropy" else (n, c)
    if tuple(y.shape) != want:
        raise ShapeError(f"targets for {loss} must have shape {want}; got {tuple(y.shape)}")
    if loss == "cross_entropy":
        if not xp.isdtype(y.dtype, "integral"):
            raise DTypeError(
                f"cross_entropy needs integer class labels in [0, {c}); got dtype {y.dtype} — "
                "convert labels with an integer cast (one-hot rows: take their argmax)"
            )
        lo, hi = xp.min(y), xp.max(y)
        if _xp.concrete_bool((lo < 0) | (hi >= c)):
            raise LabelError(
                f"class labels must lie in [0, {c - 1}] for a model with {c} outputs; got labels "
                f"from {int(lo)} to {int(hi)} (a label outside selects no class)"
            )
        return
    if y.dtype != z.dtype:
        raise DTypeError(
            f"mse targets have dtype {y.dtype} but the outputs {z.dtype}; cast one explicitly"
        )
    _xp.check_finite(y, xp, "targets")


def loss_value(z: Array, y: Array, loss: str) -> Array:
    """``L = (1/N) Σ_i ℓ(z_i, y_i)`` (0-d array)."""
    check_targets(z, y, loss)
    xp = _xp.namespace(z)
    if loss == "mse":
        return 0.5 * xp.sum((z - y) ** 2) / z.shape[0]
    m = xp.max(z, axis=-1, keepdims=True)
    lse = m[:, 0] + xp.log(xp.sum(xp.exp(z - m), axis=-1))
    picked = xp.sum(z * _one_hot(y, int(z.shape[1]), z), axis=-1)
    return xp.mean(lse - picked)


def loss_gradient(z: Array, y: Array, loss: str) -> Array:
    """Per-sample ``∂ℓ/∂z_i`` ``(N, C)`` (not divided by N)."""
    check_targets(z, y, loss)
    if loss == "mse":
        return z - y
    return softmax(z) - _one_hot(y, int(z.shape[1]), z)


def output_hessian(z: Array, y: Array, loss: str) -> Array:
    """Per-sample output curvature ``Λ_i = ∇²_z ℓ(z_i, y_i)``, shape ``(N, C, C)``."""
    check_targets(z, y, loss)
    xp = _xp.namespace(z)
    n, c = int(z.shape[0]), int(z.shape[1])
    eye = xp.eye(c, dtype=z.dtype, device=_xp.device(z))
    if loss == "mse":
        return xp.broadcast_to(eye, (n, c, c))
    p = softmax(z)
    return p[:, :, None] * eye - p[:, :, None] * p[:, None, :]


def apply_output_hessian(z: Array, y: Array, loss: str, dz: Array) -> Array:
    """``Λ_i dz_i`` for every sample, without forming ``Λ`` (``(N, C)``)."""
    check_targets(z, y, loss)
    if loss == "mse":
        return dz
    xp = _xp.namespace(z)
    p = softmax(z)
    return p * dz - p * xp.sum(p * dz, axis=-1, keepdims=True)
