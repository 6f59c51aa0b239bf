"""The arraynet layer contract: a map ``h ↦ out`` with analytic first and second derivatives.

A layer computes its output and a *cache* of whatever its derivatives need (its input, an
im2col matrix, a shape); every derivative method takes that cache first. For a batch ``h`` of
shape ``(N, ...)``, a parameter list ``params`` and its tangents / gradients as lists shaped
like it:

* ``forward(h) -> (out, cache)``;
* ``jvp(cache, dh, dp) -> dout``: the output tangent for an input tangent ``dh`` and, when
  ``dp`` is not ``None``, a parameter tangent ``dp``;
* ``vjp(cache, g, per_sample=False) -> (dh, grads)``: ``(∂out/∂h)ᵀ g`` and ``(∂out/∂θ)ᵀ g``,
  summed over the batch or, with ``per_sample``, kept per sample (a leading ``N`` axis);
* ``vjp_input(cache, g) -> dh``: only the first of those (no parameter gradients);
* ``vjp_params(cache, g, per_sample=False) -> grads``: optional, only the second (the default
  calls ``vjp``); the network's first layer uses it where no input gradient is wanted;
* ``param_jacobian_block(cache, cots, out)``: optional, the per-sample parameter gradients for
  ``C`` cotangents ``(N, C, *out)`` at once (the default loops over ``vjp_params``);
* ``input_pullback(cache) -> pull``: optional, the map ``g ↦ (∂out/∂h)ᵀ g`` for cotangents
  with the batch axis *last*, ``(*out, N) → (*in, N)`` (the default transposes around
  ``vjp_input``; see :meth:`Layer.input_pullback`);
* ``rvjp(cache, g, rg, rh, vp) -> (r_dh, r_grads)``: Pearlmutter's R-operator of ``vjp`` — its
  directional derivative when the input moves by ``rh``, the parameters by ``vp`` and the
  cotangent by ``rg`` (Pearlmutter 1994). Chained backwards it gives exact Hessian-vector
  products.

All array code is written against the array API, so layers run on NumPy, CuPy, PyTorch or JAX
arrays alike. A new layer subclasses :class:`Layer` and implements the five methods; the
network, the adapter and the trainer need nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from specinterp import _xp

Array = Any

__all__ = ["Layer"]


class Layer(ABC):
    """Base class of arraynet layers (the contract is in the module docstring)."""

    @property
    def params(self) -> tuple[Array, ...]:
        """The layer's parameter arrays, in a fixed order (empty for parameter-free layers)."""
        return ()

    def with_params(self, params: list[Array]) -> Layer:
        """A copy of the layer with new parameters (same order as :attr:`params`)."""
        return self

    @abstractmethod
    def forward(self, h: Array) -> tuple[Array, Any]:
        """``(out, cache)`` for a batch ``h``."""

    @abstractmethod
    def jvp(self, cache: Any, dh: Array | None, dp: list[Array] | None) -> Array:
        """Output tangent for the input tangent ``dh`` and the parameter tangent ``dp``."""

    @abstractmethod
    def vjp(self, cache: Any, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        """``((∂out/∂h)ᵀ g, (∂out/∂θ)ᵀ g)``, parameter gradients summed or per sample."""

    @abstractmethod
    def vjp_input(self, cache: Any, g: Array) -> Array:
        """``(∂out/∂h)ᵀ g`` alone."""

    def vjp_params(self, cache: Any, g: Array, per_sample: bool = False) -> list[Array]:
        """``(∂out/∂θ)ᵀ g`` alone (the default computes :meth:`vjp` and drops ``dh``)."""
        return self.vjp(cache, g, per_sample)[1]

    def param_jacobian_block(self, cache: Any, cots: Array, out: Array) -> None:
        """Write the per-sample parameter gradients for ``C`` cotangents into ``out``.

        ``cots`` ``(N, C, *out_shape)`` (contiguous) holds, for each network output ``a``, the
        batch's cotangents ``cots[:, a]`` at this layer's output; ``out`` ``(N, C, size)``
        receives ``(∂out/∂θ)ᵀ cots[i, a]`` of each sample, flattened in :attr:`params` order.
        The default runs :meth:`vjp_params` once per output; layers may do all ``C`` at once.
        """
        xp = _xp.namespace(cots)
        n = int(cots.shape[0])
        for a in range(int(cots.shape[1])):
            grads = self.vjp_params(cache, cots[:, a, ...], per_sample=True)
            out[:, a, :] = xp.concat([xp.reshape(t, (n, -1)) for t in grads], axis=1)

    def input_pullback(self, cache: Any) -> Callable[[Array], Array]:
        """``g ↦ (∂out/∂h)ᵀ g`` for cotangents whose batch axis is last: ``(*out, N) → (*in, N)``.

        The input Jacobian of a network without a product form takes ``C`` input-only backward
        passes (one per output unit) through the same caches. With the batch axis last, the
        elementwise and im2col-adjoint steps run over ``N`` contiguous entries at a time instead
        of the few of one image row, and a convolution's adjoint is one GEMM over the whole
        batch. The returned function may hold whatever it precomputed from ``cache`` (a
        derivative mask, a transposed weight) for the ``C`` calls.

        This default transposes to batch-first, calls :meth:`vjp_input` and transposes back, so
        a user layer that implements the five contract methods works unchanged.
        """

        def pull(g: Array) -> Array:
            xp = _xp.namespace(g)
            nd = g.ndim
            dh = self.vjp_input(cache, xp.permute_dims(g, (nd - 1, *range(nd - 1))))
            return xp.permute_dims(dh, (*range(1, dh.ndim), 0))

        return pull

    @abstractmethod
    def rvjp(
        self, cache: Any, g: Array, rg: Array, rh: Array, vp: list[Array]
    ) -> tuple[Array, list[Array]]:
        """Derivative of :meth:`vjp` along ``(rh, vp)``, the cotangent moving by ``rg``."""
