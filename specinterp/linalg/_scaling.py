"""A self-scaling view of an operator, so Krylov methods never over- or underflow.

The Krylov solvers are scale-equivariant (the eigenvalues of ``A / c`` are those of ``A``
divided by ``c``), but their vectors are not: for an operator of norm 1e-300 or 1e300 a vector
norm squares entries out of range and absolute breakdown thresholds lose their meaning (docs:
numerical guarantees, #numerics-scale). The first product fixes a power of two ``c`` near the
largest entry of ``A v`` for the (unit) starting vector; when that entry lies outside
``[tiny^¼, max^¼]`` of the dtype every product is divided by ``c`` (exactly), and the solver
multiplies its values and residuals by ``c`` at the end. No extra product is spent.
"""

from __future__ import annotations

import math
from typing import Any

from .. import _xp
from .operator import LinearOperator

Array = Any

__all__ = ["SelfScaling", "unscale"]


class SelfScaling(LinearOperator):
    """``A / c`` with ``c`` a power of two fixed by the first product (``c = 1`` in range)."""

    def __init__(self, op: LinearOperator) -> None:
        super().__init__(
            op.shape,
            self._scaled(op.matvec),
            rmatvec=self._scaled(op.rmatvec) if op._rmatvec or op._rmatmat else None,
            matmat=self._scaled(op.matmat),
            rmatmat=self._scaled(op.rmatmat) if op._rmatvec or op._rmatmat else None,
            dtype=op.dtype,
            xp=op.xp,
            device=op.device,
            symmetric=op.symmetric,
        )
        self.scale: float | None = None

    def _scaled(self, product: Any) -> Any:
        def apply(x: Array) -> Array:
            y = product(x)
            if self.scale is None:
                self.scale = _power_of_two_scale(y, self.xp)
            return y if self.scale == 1.0 else y / self.scale

        return apply


def _power_of_two_scale(y: Array, xp: Any) -> float:
    top = float(xp.max(xp.abs(y))) if y.size else 0.0
    low, high = _xp.safe_magnitudes(xp, y.dtype)
    if top == 0.0 or not math.isfinite(top) or low <= top <= high:
        return 1.0
    return 2.0 ** math.floor(math.log2(top))


def unscale(scale: float | None) -> float:
    """The factor that turns the scaled operator's values back into ``A``'s."""
    return 1.0 if scale is None else scale
