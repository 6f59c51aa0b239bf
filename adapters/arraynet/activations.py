"""Elementwise activations with first and second derivatives (ReLU, leaky ReLU, tanh, ...).

``piecewise_linear`` marks the activations T4 covers (:ref:`theory-t4`); ``lipschitz`` is the
constant of T3 (:ref:`theory-t3`).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from specinterp import _xp

from .layer import Layer

Array = Any

__all__ = ["GELU", "Activation", "LeakyReLU", "ReLU", "Sigmoid", "Softplus", "Tanh"]


class Activation(Layer):
    """An elementwise activation with its first and second derivatives; its cache is its input."""

    piecewise_linear: bool = False

    @property
    def lipschitz(self) -> float:
        """Global Lipschitz constant ``sup |φ'|`` (mathematics, T3)."""
        return 1.0

    @abstractmethod
    def f(self, z: Array) -> Array:
        """The activation, elementwise."""

    @abstractmethod
    def df(self, z: Array) -> Array:
        """Its first derivative, elementwise."""

    @abstractmethod
    def d2f(self, z: Array) -> Array:
        """Its second derivative, elementwise."""

    def forward(self, h: Array) -> tuple[Array, Any]:
        return self.f(h), h

    def jvp(self, cache: Any, dh: Array | None, dp: Any) -> Array:
        return self.df(cache) * dh

    def vjp(self, cache: Any, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        return self.df(cache) * g, []

    def vjp_input(self, cache: Any, g: Array) -> Array:
        return self.df(cache) * g

    def input_pullback(self, cache: Any) -> Callable[[Array], Array]:
        xp = _xp.namespace(cache)
        nd = cache.ndim
        # the derivative once, batch axis last and contiguous, for the C products
        d = _xp.contiguous(xp.permute_dims(self.df(cache), (*range(1, nd), 0)))
        return lambda g: d * g

    def rvjp(
        self, cache: Any, g: Array, rg: Array, rh: Array, vp: Any
    ) -> tuple[Array, list[Array]]:
        return self.df(cache) * rg + self.d2f(cache) * rh * g, []


@dataclass(frozen=True)
class ReLU(Activation):
    """``max(z, 0)`` (derivative 0 at 0, as torch)."""

    piecewise_linear: bool = field(default=True, init=False)

    def f(self, z: Array) -> Array:
        # maximum, not where(z > 0, z, 0): NumPy's where is ~8× slower here, and NaN stays NaN
        xp = _xp.namespace(z)
        return xp.maximum(z, xp.zeros((), dtype=z.dtype, device=_xp.device(z)))

    def df(self, z: Array) -> Array:
        xp = _xp.namespace(z)
        return xp.astype(z > 0, z.dtype)

    def d2f(self, z: Array) -> Array:
        return _xp.namespace(z).zeros_like(z)


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """``z`` for ``z > 0``, ``slope · z`` otherwise."""

    slope: float = 0.01
    piecewise_linear: bool = field(default=True, init=False)

    @property
    def lipschitz(self) -> float:
        """``max(1, |slope|)``."""
        return max(1.0, abs(self.slope))

    def f(self, z: Array) -> Array:
        # max(z, a·z) for a ≤ 1, min(z, a·z) for a > 1 (a = 0: max(z, 0), as 0·∞ is NaN):
        # NumPy's where is ~8× slower
        xp, a = _xp.namespace(z), self.slope
        if a == 0:
            return xp.maximum(z, xp.zeros((), dtype=z.dtype, device=_xp.device(z)))
        return xp.maximum(z, a * z) if a <= 1 else xp.minimum(z, a * z)

    def df(self, z: Array) -> Array:
        xp = _xp.namespace(z)
        return xp.where(z > 0, xp.ones_like(z), xp.full_like(z, self.slope))

    def d2f(self, z: Array) -> Array:
        return _xp.namespace(z).zeros_like(z)


@dataclass(frozen=True)
class Tanh(Activation):
    """``tanh z``."""

    def f(self, z: Array) -> Array:
        return _xp.namespace(z).tanh(z)

    def df(self, z: Array) -> Array:
        return 1.0 - _xp.namespace(z).tanh(z) ** 2

    def d2f(self, z: Array) -> Array:
        t = _xp.namespace(z).tanh(z)
        return -2.0 * t * (1.0 - t**2)


def _sigmoid(z: Array) -> Array:
    xp = _xp.namespace(z)
    return 0.5 * (1.0 + xp.tanh(0.5 * z))  # overflow-free logistic


@dataclass(frozen=True)
class Sigmoid(Activation):
    """Logistic ``1 / (1 + e^{−z})``."""

    @property
    def lipschitz(self) -> float:
        """``1/4``."""
        return 0.25

    def f(self, z: Array) -> Array:
        return _sigmoid(z)

    def df(self, z: Array) -> Array:
        s = _sigmoid(z)
        return s * (1.0 - s)

    def d2f(self, z: Array) -> Array:
        s = _sigmoid(z)
        return s * (1.0 - s) * (1.0 - 2.0 * s)


@dataclass(frozen=True)
class Softplus(Activation):
    """``log(1 + e^{βz}) / β`` (computed stably; torch's linear threshold is not applied)."""

    beta: float = 1.0

    def f(self, z: Array) -> Array:
        xp = _xp.namespace(z)
        bz = self.beta * z
        return (xp.where(bz > 0, bz, 0.0) + xp.log1p(xp.exp(-xp.abs(bz)))) / self.beta

    def df(self, z: Array) -> Array:
        return _sigmoid(self.beta * z)

    def d2f(self, z: Array) -> Array:
        s = _sigmoid(self.beta * z)
        return self.beta * s * (1.0 - s)


_C = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class GELU(Activation):
    """GELU, tanh form ``½ z (1 + tanh(√(2/π)(z + 0.044715 z³)))`` (torch ``approximate="tanh"``).

    The array API has no ``erf``, so the exact form is not offered.
    """

    @property
    def lipschitz(self) -> float:
        """``sup φ' ≈ 1.128993`` (at ``z ≈ 1.4``), rounded up."""
        return 1.12900

    def _parts(self, z: Array) -> tuple[Array, Array, Array]:
        xp = _xp.namespace(z)
        u = _C * (z + 0.044715 * z**3)
        t = xp.tanh(u)
        du = _C * (1.0 + 3 * 0.044715 * z**2)
        return t, u, du

    def f(self, z: Array) -> Array:
        t, _, _ = self._parts(z)
        return 0.5 * z * (1.0 + t)

    def df(self, z: Array) -> Array:
        t, _, du = self._parts(z)
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t**2) * du

    def d2f(self, z: Array) -> Array:
        t, _, du = self._parts(z)
        sech2 = 1.0 - t**2
        d2u = _C * 6 * 0.044715 * z
        return sech2 * du + 0.5 * z * (-2.0 * t * sech2 * du**2 + sech2 * d2u)
