"""Affine and reshaping arraynet layers: :class:`Dense` and :class:`Flatten`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from specinterp import _xp

from .layer import Layer

Array = Any

__all__ = ["Dense", "Flatten"]


@dataclass(frozen=True)
class Dense(Layer):
    """Affine layer ``out = h Wᵀ + b`` with ``weight (out, in)`` as in torch."""

    weight: Array
    bias: Array | None = None

    @property
    def params(self) -> tuple[Array, ...]:  # type: ignore[override]
        return (self.weight,) if self.bias is None else (self.weight, self.bias)

    def with_params(self, params: list[Array]) -> Dense:
        return Dense(params[0], params[1] if self.bias is not None else None)

    def forward(self, h: Array) -> tuple[Array, Any]:
        out = h @ self.weight.T
        return (out if self.bias is None else out + self.bias), h

    def jvp(self, cache: Any, dh: Array | None, dp: list[Array] | None) -> Array:
        h = cache  # the layer's input
        out = 0.0 if dh is None else dh @ self.weight.T
        if dp is not None:
            out = out + h @ dp[0].T
            if self.bias is not None:
                out = out + dp[1]
        return out

    def vjp(self, cache: Any, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        return g @ self.weight, self.vjp_params(cache, g, per_sample)

    def vjp_params(self, cache: Any, g: Array, per_sample: bool = False) -> list[Array]:
        """Weight (and bias) gradients alone."""
        h = cache
        xp = _xp.namespace(g)
        if per_sample:
            grads = [g[:, :, None] * h[:, None, :]]
            if self.bias is not None:
                grads.append(g)
        else:
            grads = [g.T @ h]
            if self.bias is not None:
                grads.append(xp.sum(g, axis=0))
        return grads

    def vjp_input(self, cache: Any, g: Array) -> Array:
        return g @ self.weight

    def param_jacobian_block(self, cache: Any, cots: Array, out: Array) -> None:
        """``∂f_a/∂W = g_a ⊗ h`` and ``∂f_a/∂b = g_a`` per sample, for all ``a`` (NumPy)."""
        import numpy as np

        h, n_out, n_in = cache, int(self.weight.shape[0]), int(self.weight.shape[1])
        g = cots  # (N, C, n_out)
        n, c = int(g.shape[0]), int(g.shape[1])
        block = out[:, :, : n_out * n_in].reshape(n, c, n_out, n_in)  # a view
        np.multiply(g[:, :, :, None], h[:, None, None, :], out=block)
        if self.bias is not None:
            out[:, :, n_out * n_in :] = g

    def input_pullback(self, cache: Any) -> Callable[[Array], Array]:
        wt = self.weight.T  # (in, out) @ (out, N)
        return lambda g: wt @ g

    def rvjp(
        self, cache: Any, g: Array, rg: Array, rh: Array, vp: list[Array]
    ) -> tuple[Array, list[Array]]:
        h = cache
        xp = _xp.namespace(g)
        grads = [rg.T @ h + g.T @ rh]
        if self.bias is not None:
            grads.append(xp.sum(rg, axis=0))
        return rg @ self.weight + g @ vp[0], grads


@dataclass(frozen=True)
class Flatten(Layer):
    """``(N, ...) → (N, -1)``; its cache is the input shape."""

    def forward(self, h: Array) -> tuple[Array, Any]:
        return _xp.namespace(h).reshape(h, (int(h.shape[0]), -1)), tuple(h.shape)

    def jvp(self, cache: Any, dh: Array | None, dp: Any) -> Array:
        return _xp.namespace(dh).reshape(dh, (int(dh.shape[0]), -1))

    def vjp(self, cache: Any, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        return _xp.namespace(g).reshape(g, cache), []

    def vjp_input(self, cache: Any, g: Array) -> Array:
        return _xp.namespace(g).reshape(g, cache)

    def input_pullback(self, cache: Any) -> Callable[[Array], Array]:
        features = tuple(cache[1:])
        return lambda g: _xp.namespace(g).reshape(g, (*features, int(g.shape[-1])))

    def rvjp(
        self, cache: Any, g: Array, rg: Array, rh: Array, vp: Any
    ) -> tuple[Array, list[Array]]:
        return _xp.namespace(rg).reshape(rg, cache), []
