"""Views of a model: the same network with part of its output, behind the Model protocol.

:func:`output_position` keeps the outputs at one position of their first axis — for a language
model returning ``(N, T, V)`` logits, ``output_position(model, x, -1)`` is the next-token
predictor ``(N, V)`` at the end of each sequence. Every operator and diagnostic then refers to
that output: its Jacobians are the rows ``(T−1)·V … T·V−1`` of the full model's
(:ref:`theory-token-inputs`), its loss is the loss of those outputs. The view is generic: it uses
only the base model's protocol products, and keeps its token-embedding view.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _xp
from .capabilities import (
    JacobianFactor,
    LastPosition,
    NativeInputJacobian,
    ReusableHVP,
    TokenEmbedding,
    WeightMatrices,
    offers,
    use,
)
from .errors import ShapeError
from .losses import Loss, get_loss
from .model import ModelBase, as_model

Array = Any

__all__ = ["OutputPosition", "output_position"]


@dataclass(frozen=True)
class _AtPosition(Loss):
    """``inner`` applied to the outputs at one position (zero elsewhere)."""

    inner: Loss
    index: int

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.inner.name} at position {self.index}"

    @property
    def curvature_bound(self) -> float | None:  # type: ignore[override]
        return self.inner.curvature_bound

    @property
    def convex(self) -> bool:  # type: ignore[override]
        return self.inner.convex  # a convex loss of some of the outputs is convex in all

    def _place(self, z: Array, part: Array) -> Array:
        xp = _xp.namespace(z)
        before = xp.zeros_like(z[:, : self.index, ...])
        after = xp.zeros_like(z[:, self.index + 1 :, ...])
        return xp.concat([before, part[:, None, ...], after], axis=1)

    def check(self, z: Array, y: Array) -> None:
        self.inner.check(z[:, self.index, ...], y)

    def per_sample(self, z: Array, y: Array) -> Array:
        return self.inner.per_sample(z[:, self.index, ...], y)

    def gradient(self, z: Array, y: Array) -> Array:
        return self._place(z, self.inner.gradient(z[:, self.index, ...], y))

    def apply_hessian(self, z: Array, y: Array, dz: Array) -> Array:
        return self._place(z, self.inner.apply_hessian(z[:, self.index, ...], y, dz[:, self.index]))


class OutputPosition(ModelBase):
    """The outputs of ``base`` at position ``index`` of their first axis: ``(N, *out[1:])``.

    Built for one per-sample input shape (``x`` of the constructor), which every call checks.
    """

    def __init__(self, base: Any, x: Array, index: int = -1) -> None:
        base = as_model(base)
        out = tuple(base.output_shape(x))
        if not out:
            raise ShapeError("the model's outputs have no position axis to select from")
        if index % out[0] == out[0] - 1 and out[0] > 1:
            base, out = _last_position_only(base, x, out)
        self.base = base
        self.index = index % out[0]
        self._out = out
        self.input_shape = tuple(int(s) for s in x.shape[1:])
        self.xp, self.dtype, self.num_params = base.xp, base.dtype, base.num_params
        self.device = getattr(base, "device", None)
        self.accepts_token_ids = getattr(base, "accepts_token_ids", False)
        inner = math.prod(out[1:])
        self._lo, self._hi = self.index * inner, (self.index + 1) * inner
        if offers(base, TokenEmbedding):
            self.embedded = self._embedded
        if out[0] == 1:  # one position: the base's J is the view's
            if offers(base, JacobianFactor):
                self.input_jacobian_factor = self._of_base("input_jacobian_factor")
            if offers(base, NativeInputJacobian):
                self.input_jacobian = self._of_base("input_jacobian")
        if offers(base, WeightMatrices):
            self.weight_matrices = base.weight_matrices

    def __repr__(self) -> str:
        return f"OutputPosition({self.base!r}, index={self.index} of {self._out[0]})"

    def check_input(self, x: Array, what: str = "x") -> None:
        """The base model's checks, and the per-sample shape the view was built for."""
        self.base.check_input(x, what)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"{what} has per-sample shape {tuple(x.shape[1:])}; this output view was built "
                f"for {self.input_shape}"
            )

    def output_shape(self, x: Array) -> tuple[int, ...]:
        """``out[1:]``."""
        self.check_input(x)
        return self._out[1:]

    def _pad(self, u: Array) -> Array:
        xp = self.xp
        n = int(u.shape[0])
        full = math.prod(self._out)
        left = xp.zeros((n, self._lo), dtype=u.dtype, device=_xp.device(u))
        right = xp.zeros((n, full - self._hi), dtype=u.dtype, device=_xp.device(u))
        return xp.concat([left, u, right], axis=1)

    def apply(self, x: Array) -> Array:
        """``(N, C')`` with ``C' = prod(out[1:])``."""
        self.check_input(x)
        return self.base.apply(x)[:, self._lo : self._hi]

    def jvp_input(self, x: Array, v: Array) -> Array:
        """Rows of ``J_i v_i`` at the position."""
        self.check_input(x)
        return self.base.jvp_input(x, v)[:, self._lo : self._hi]

    def vjp_input(self, x: Array, u: Array) -> Array:
        """``J_iᵀ`` of the position's rows."""
        self.check_input(x)
        return self.base.vjp_input(x, self._pad(u))

    def jvp_params(self, x: Array, v: Array) -> Array:
        """Rows of ``G_i v`` at the position."""
        self.check_input(x)
        return self.base.jvp_params(x, v)[:, self._lo : self._hi]

    def vjp_params(self, x: Array, u: Array) -> Array:
        """``Σ_i G_iᵀ u_i`` over the position's rows."""
        self.check_input(x)
        return self.base.vjp_params(x, self._pad(u))

    def hvp(self, x: Array, y: Array, v: Array, loss: Any) -> Array:
        """``H v`` of the loss of the position's outputs."""
        self.check_input(x)
        return self.base.hvp(x, y, v, _AtPosition(get_loss(loss), self.index))

    def hvp_operator(self, x: Array, y: Array, loss: Any) -> Any:
        """The base model's work-reusing HVP for the position's loss, where it has one."""
        self.check_input(x)
        at = _AtPosition(get_loss(loss), self.index)
        try:
            return use(self.base, ReusableHVP, x, y, at)
        except NotImplementedError:
            return lambda v: self.base.hvp(x, y, v, at)

    def _of_base(self, name: str) -> Callable[[Array], Array]:
        """The base model's input-side method ``name`` behind the view's input checks.

        With one position the base's ``J`` is the view's, so its own dense Jacobian
        (``vmap(jacfwd)`` in torch and JAX) and its Jacobian factor serve the view as they are.
        """
        method = getattr(self.base, name)

        def call(x: Array) -> Array:
            self.check_input(x)
            return method(x)

        return call

    def _embedded(self, x: Array) -> tuple[OutputPosition, Array]:
        model_e, e = self.base.embedded(x)
        return OutputPosition(model_e, e, self.index), e


def _last_position_only(base: Any, x: Array, out: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
    """``base`` computing only its last position (:class:`LastPosition`), where it can."""
    try:
        last = use(base, LastPosition)
    except NotImplementedError:
        return base, out
    last_out = tuple(last.output_shape(x))
    if last_out != (1, *out[1:]):  # pragma: no cover - an adapter's programming error
        raise ShapeError(f"the last-position model gives outputs {last_out}, not (1, *{out[1:]})")
    return last, last_out


def output_position(model: Any, x: Array, index: int = -1) -> OutputPosition:
    """The view of ``model`` with only its outputs at ``index`` of their first axis."""
    return OutputPosition(model, x, index)
