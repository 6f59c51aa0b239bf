"""Layers of :mod:`specinterp.adapters.arraynet`, each with analytic derivatives.

Every layer maps ``h ↦ out`` and implements, for a cache of its forward pass:

* ``jvp(cache, dh, dp)``: the output tangent for an input tangent ``dh`` and (optionally) a
  parameter tangent ``dp`` (a list like ``params``);
* ``vjp(cache, g, per_sample)``: ``(∂out/∂h)ᵀ g`` and ``(∂out/∂θ)ᵀ g`` (summed over the batch,
  or kept per sample); ``vjp_input(cache, g)`` only the first;
* ``rvjp(cache, g, rg, rh, vp)``: Pearlmutter's R-operator of ``vjp`` — its directional
  derivative when the input moves by ``rh``, the parameters by ``vp`` and the cotangent by
  ``rg`` (Pearlmutter 1994). Chained backwards it gives exact Hessian-vector products.

All array code is written against the array API, so the layers run on NumPy, CuPy, PyTorch or
JAX arrays alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import array_api_extra as xpx

from specinterp import _xp

Array = Any

__all__ = [
    "GELU",
    "Conv2d",
    "Dense",
    "Flatten",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Softplus",
    "Tanh",
]


class Layer:
    """Base class: a layer without parameters."""

    params: tuple[Array, ...] = ()

    def with_params(self, params: list[Array]) -> Layer:
        """A copy of the layer with new parameters (same order as ``params``)."""
        return self


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

    def jvp(self, h: Array, dh: Array | None, dp: list[Array] | None) -> Array:
        out = 0.0 if dh is None else dh @ self.weight.T
        if dp is not None:
            out = out + h @ dp[0].T
            if self.bias is not None:
                out = out + dp[1]
        return out

    def vjp(self, h: Array, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        xp = _xp.namespace(g)
        if per_sample:
            grads = [g[:, :, None] * h[:, None, :]]
            if self.bias is not None:
                grads.append(g)
        else:
            grads = [g.T @ h]
            if self.bias is not None:
                grads.append(xp.sum(g, axis=0))
        return g @ self.weight, grads

    def vjp_input(self, h: Array, g: Array) -> Array:
        return g @ self.weight

    def rvjp(
        self, h: Array, g: Array, rg: Array, rh: Array, vp: list[Array]
    ) -> tuple[Array, list[Array]]:
        xp = _xp.namespace(g)
        grads = [rg.T @ h + g.T @ rh]
        if self.bias is not None:
            grads.append(xp.sum(rg, axis=0))
        return rg @ self.weight + g @ vp[0], grads


@dataclass(frozen=True)
class Conv2d(Layer):
    """2-d cross-correlation ``(N, c_in, H, W) → (N, c_out, H_o, W_o)`` by im2col.

    ``weight (c_out, c_in, k_h, k_w)`` and ``bias (c_out,)`` as in ``torch.nn.Conv2d`` with
    zero padding, ``dilation = 1``, ``groups = 1``.
    """

    weight: Array
    bias: Array | None = None
    stride: int = 1
    padding: int = 0

    @property
    def params(self) -> tuple[Array, ...]:  # type: ignore[override]
        return (self.weight,) if self.bias is None else (self.weight, self.bias)

    def with_params(self, params: list[Array]) -> Conv2d:
        return Conv2d(
            params[0], params[1] if self.bias is not None else None, self.stride, self.padding
        )

    # ---- im2col and its adjoint
    def _geometry(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        kh, kw = int(self.weight.shape[2]), int(self.weight.shape[3])
        ho = (int(shape[2]) + 2 * self.padding - kh) // self.stride + 1
        wo = (int(shape[3]) + 2 * self.padding - kw) // self.stride + 1
        return kh, kw, ho, wo

    def _cols(self, h: Array) -> Array:
        xp = _xp.namespace(h)
        kh, kw, ho, wo = self._geometry(tuple(h.shape))
        p, s = self.padding, self.stride
        if p:
            h = xpx.pad(h, ((0, 0), (0, 0), (p, p), (p, p)), xp=xp)
        patches = [
            h[:, :, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]
            for i in range(kh)
            for j in range(kw)
        ]
        cols = xp.stack(patches, axis=2)  # (N, c_in, kh·kw, ho, wo)
        return xp.reshape(cols, (int(h.shape[0]), -1, ho * wo))

    def _uncols(self, dcols: Array, shape: tuple[int, ...]) -> Array:
        xp = _xp.namespace(dcols)
        kh, kw, ho, wo = self._geometry(shape)
        n, c, hh, ww = (int(v) for v in shape)
        p, s = self.padding, self.stride
        d = xp.reshape(dcols, (n, c, kh * kw, ho, wo))
        out = xp.zeros((n, c, hh + 2 * p, ww + 2 * p), dtype=dcols.dtype, device=_xp.device(dcols))
        for i in range(kh):
            for j in range(kw):
                idx = (
                    slice(None),
                    slice(None),
                    slice(i, i + s * (ho - 1) + 1, s),
                    slice(j, j + s * (wo - 1) + 1, s),
                )
                out = xpx.at(out, idx).add(d[:, :, i * kw + j, :, :])
        return out[:, :, p : p + hh, p : p + ww]

    def _wmat(self, w: Array) -> Array:
        return _xp.namespace(w).reshape(w, (int(w.shape[0]), -1))

    def _out(self, mat: Array, shape: tuple[int, ...], bias: Array | None) -> Array:
        xp = _xp.namespace(mat)
        _, _, ho, wo = self._geometry(shape)
        out = xp.reshape(mat, (int(mat.shape[0]), int(mat.shape[1]), ho, wo))
        return out if bias is None else out + bias[None, :, None, None]

    def forward(self, h: Array) -> tuple[Array, Any]:
        cols = self._cols(h)
        return self._out(self._wmat(self.weight) @ cols, tuple(h.shape), self.bias), (h, cols)

    def jvp(self, cache: Any, dh: Array | None, dp: list[Array] | None) -> Array:
        h, cols = cache
        xp = _xp.namespace(h)
        mat = 0.0 if dh is None else self._wmat(self.weight) @ self._cols(dh)
        bias = None
        if dp is not None:
            mat = mat + self._wmat(dp[0]) @ cols
            bias = dp[1] if self.bias is not None else None
        if isinstance(mat, float):
            mat = xp.zeros_like(self._wmat(self.weight) @ cols)
        return self._out(mat, tuple(h.shape), bias)

    def _gmat(self, g: Array) -> Array:
        xp = _xp.namespace(g)
        return xp.reshape(g, (int(g.shape[0]), int(g.shape[1]), -1))

    def vjp(self, cache: Any, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        h, cols = cache
        xp = _xp.namespace(g)
        gm = self._gmat(g)
        dh = self._uncols(self._wmat(self.weight).T @ gm, tuple(h.shape))
        per = gm @ xp.permute_dims(cols, (0, 2, 1))  # (N, c_out, c_in·kh·kw)
        dw = per if per_sample else xp.sum(per, axis=0)
        dw = xp.reshape(dw, ((int(g.shape[0]),) if per_sample else ()) + tuple(self.weight.shape))
        grads = [dw]
        if self.bias is not None:
            db = xp.sum(gm, axis=2)
            grads.append(db if per_sample else xp.sum(db, axis=0))
        return dh, grads

    def vjp_input(self, cache: Any, g: Array) -> Array:
        h, _ = cache
        return self._uncols(self._wmat(self.weight).T @ self._gmat(g), tuple(h.shape))

    def rvjp(
        self, cache: Any, g: Array, rg: Array, rh: Array, vp: list[Array]
    ) -> tuple[Array, list[Array]]:
        h, cols = cache
        xp = _xp.namespace(g)
        gm, rgm = self._gmat(g), self._gmat(rg)
        dcols = self._wmat(self.weight).T @ rgm + self._wmat(vp[0]).T @ gm
        r_dh = self._uncols(dcols, tuple(h.shape))
        rcols = self._cols(rh)
        dw = xp.sum(
            rgm @ xp.permute_dims(cols, (0, 2, 1)) + gm @ xp.permute_dims(rcols, (0, 2, 1)), axis=0
        )
        grads = [xp.reshape(dw, tuple(self.weight.shape))]
        if self.bias is not None:
            grads.append(xp.sum(rgm, axis=(0, 2)))
        return r_dh, grads


@dataclass(frozen=True)
class Flatten(Layer):
    """``(N, ...) → (N, -1)``."""

    def forward(self, h: Array) -> tuple[Array, Any]:
        return _xp.namespace(h).reshape(h, (int(h.shape[0]), -1)), tuple(h.shape)

    def jvp(self, shape: Any, dh: Array | None, dp: Any) -> Array:
        return _xp.namespace(dh).reshape(dh, (int(dh.shape[0]), -1))

    def vjp(self, shape: Any, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        return _xp.namespace(g).reshape(g, shape), []

    def vjp_input(self, shape: Any, g: Array) -> Array:
        return _xp.namespace(g).reshape(g, shape)

    def rvjp(
        self, shape: Any, g: Array, rg: Array, rh: Array, vp: Any
    ) -> tuple[Array, list[Array]]:
        return _xp.namespace(rg).reshape(rg, shape), []


class Activation(Layer):
    """An elementwise activation with first and second derivatives."""

    piecewise_linear: bool = False

    @property
    def lipschitz(self) -> float:
        """Global Lipschitz constant ``sup |φ'|`` (mathematics, T3)."""
        return 1.0

    def f(self, z: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def df(self, z: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def d2f(self, z: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, h: Array) -> tuple[Array, Any]:
        return self.f(h), h

    def jvp(self, z: Array, dh: Array | None, dp: Any) -> Array:
        return self.df(z) * dh

    def vjp(self, z: Array, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        return self.df(z) * g, []

    def vjp_input(self, z: Array, g: Array) -> Array:
        return self.df(z) * g

    def rvjp(self, z: Array, g: Array, rg: Array, rh: Array, vp: Any) -> tuple[Array, list[Array]]:
        return self.df(z) * rg + self.d2f(z) * rh * g, []


@dataclass(frozen=True)
class ReLU(Activation):
    """``max(z, 0)`` (derivative 0 at 0, as torch)."""

    piecewise_linear: bool = field(default=True, init=False)

    def f(self, z: Array) -> Array:
        return _xp.namespace(z).where(z > 0, z, 0.0)

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
        return _xp.namespace(z).where(z > 0, z, self.slope * z)

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
