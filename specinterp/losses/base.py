"""The :class:`Loss` interface and the target checks the built-in losses share."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import _xp
from ..errors import DTypeError, NamespaceMismatchError, ShapeError

Array = Any

__all__ = ["Loss", "softmax"]


class Loss:
    """A per-sample loss ``ℓ(z_i, y_i)`` with its output gradient and curvature products.

    Subclasses implement :meth:`check`, :meth:`per_sample`, :meth:`gradient` and
    :meth:`apply_hessian`; outputs ``z`` always have the model's shape ``(N, *out)``.
    """

    name: str = "loss"
    #: ``β_ℓ = sup ‖Λ_i‖₂`` when the loss has a data-independent bound, else ``None``
    curvature_bound: float | None = None
    #: whether ``ℓ`` is known to be convex in the outputs (``Λ_i ⪰ 0``, so the GGN is PSD)
    convex: bool = False

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

    def hessian_at(self, z: Array, y: Array) -> Callable[[Array], Array]:
        """``dz ↦ Λ dz`` at fixed outputs and targets (checked once), for many products.

        What every product shares (softmax probabilities, masks, weights) is computed here
        once; the default calls :meth:`apply_hessian` each time.
        """
        self.check(z, y)
        return lambda dz: self.apply_hessian(z, y, dz)

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
    if not _xp.is_array(y) or not _xp.same_namespace(_xp.namespace(y), xp):
        raise NamespaceMismatchError(
            f"targets are {type(y).__module__.split('.')[0]} data but the model's outputs are "
            f"{_xp.backend_name(xp)} arrays; convert them explicitly to the model's library "
            "and device (e.g. torch.as_tensor(y, device=...), jax.numpy.asarray(y))"
        )
    return xp


def _check_like_outputs(loss: str, z: Array, y: Array) -> Any:
    xp = _check_namespace(z, y)
    if tuple(y.shape) != tuple(z.shape):
        column = z.ndim >= 1 and int(z.shape[-1]) == 1 and tuple(y.shape) == tuple(z.shape[:-1])
        hint = " — the outputs are one column: pass y[..., None]" if column else ""
        raise ShapeError(
            f"targets for {loss} must have the outputs' shape {tuple(z.shape)}; got "
            f"{tuple(y.shape)}{hint}"
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


def softmax(z: Array) -> Array:
    """Softmax over the last axis, shifted by its maximum for stability."""
    xp = _xp.namespace(z)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)
