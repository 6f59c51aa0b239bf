"""The arraynet adapter: a ``Sequential`` network behind the Model protocol.

Every operator of the framework — input and parameter Jacobians, NTK, exact Hessian-vector
products (Pearlmutter's R-operator through the layers), GGN — is computed from the layers'
analytic derivatives (the ``layer`` contract), without an autodiff framework. MLPs also expose
their product form (``product_form``), and networks that open with a dense layer their
curvature on its inputs' span (``compression``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from specinterp import _xp
from specinterp._guards import finite_result
from specinterp.capabilities import ConvKernel
from specinterp.errors import ModelError, ShapeError
from specinterp.losses import apply_output_hessian, check_loss, loss_gradient, loss_value
from specinterp.model import ModelBase
from specinterp.operators import DEFAULT_MAX_BYTES

from . import param_jacobian as jacobian_routes
from .compression import first_dense_compression
from .conv import Conv2d
from .dense import Dense, Flatten
from .jacobian_layout import batch_last_passes, r_factors, stack_transposed
from .network import Sequential
from .product_form import LayerFactors, layer_factors, output_side_product

Array = Any

__all__ = ["ArrayNetModel"]


class ArrayNetModel(ModelBase):
    """An arraynet :class:`Sequential` behind the :class:`~specinterp.model.Model` protocol."""

    def __init__(self, net: Sequential, *, input_shape: Sequence[int] | None = None) -> None:
        if not isinstance(net, Sequential):
            raise ModelError("ArrayNetModel wraps an arraynet Sequential")
        params = net.params
        if not params:
            raise ModelError("the network has no parameters")
        self.net = net
        self.xp = _xp.namespace(*params)
        dtypes = {p.dtype for p in params}
        if len(dtypes) != 1:
            raise ModelError(f"all parameters must share one dtype; got {dtypes}")
        self.dtype = dtypes.pop()
        _xp.check_parameter_precision(self.dtype, self.xp)
        self.device = _xp.device(params[0])
        self._shapes = [tuple(int(s) for s in p.shape) for p in params]
        self._sizes = [math.prod(s) for s in self._shapes]
        self.num_params = sum(self._sizes)
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.source = "arraynet"

    def __repr__(self) -> str:
        names = [type(lay).__name__ for lay in self.net.layers]
        shown = ", ".join(names) if len(names) <= 8 else ", ".join(names[:7]) + ", …"
        return (
            f"ArrayNetModel({self.source}: {shown}; p={self.num_params:,}, dtype={self.dtype}, "
            f"xp={_xp.backend_name(self.xp)}, device={self.device}{self._shapes_text()})"
        )

    def check_input(self, x: Array, what: str = "x") -> None:
        """The shared checks, plus the input size the first layer accepts."""
        super().check_input(x, what)
        layers = self.net.layers
        first = layers[1] if isinstance(layers[0], Flatten) and len(layers) > 1 else layers[0]
        per_sample = tuple(int(s) for s in x.shape[1:])
        if isinstance(first, Dense):
            need = int(first.weight.shape[1])
            got = math.prod(per_sample) if isinstance(layers[0], Flatten) else per_sample
            if got != need and got != (need,):
                raise ShapeError(
                    f"{what} has per-sample shape {per_sample}, but the first Dense layer takes "
                    f"{need} features"
                )
        elif isinstance(first, Conv2d):
            c_in = int(first.weight.shape[1])
            if len(per_sample) != 3 or per_sample[0] != c_in:
                raise ShapeError(
                    f"{what} has per-sample shape {per_sample}, but the first Conv2d takes "
                    f"({c_in}, H, W) images"
                )

    # ------------------------------------------------------------------ flat parameters
    def unflatten(self, v: Array) -> list[Array]:
        """Split a flat vector into arrays shaped like the parameters."""
        self.check_flat_params(v)
        out, i = [], 0
        for shape, size in zip(self._shapes, self._sizes, strict=True):
            out.append(self.xp.reshape(v[i : i + size], shape))
            i += size
        return out

    def flatten(self, arrays: Sequence[Array]) -> Array:
        """Concatenate parameter-shaped arrays into one flat vector."""
        return self.xp.concat([self.xp.reshape(a, (-1,)) for a in arrays])

    def _per_layer(self, flat_list: list[Array]) -> list[list[Array]]:
        out, i = [], 0
        for lay in self.net.layers:
            k = len(lay.params)
            out.append(flat_list[i : i + k])
            i += k
        return out

    def weight_matrices(self) -> list[tuple[str, Array]]:
        """The ``Dense`` weight matrices ``(out, in)``, named by layer index."""
        return [
            (f"layer{i}.weight", lay.weight)
            for i, lay in enumerate(self.net.layers)
            if isinstance(lay, Dense)
        ]

    def conv_kernels(self, input_shape: Sequence[int] | None = None) -> list[ConvKernel]:
        """The ``Conv2d`` layers (zero padding) with their input sizes, named by layer index."""
        shape = self.input_shape if input_shape is None else tuple(input_shape)
        sizes: dict[int, tuple[int, int]] = {}
        if shape is not None and any(isinstance(lay, Conv2d) for lay in self.net.layers):
            h = self.xp.zeros((1, *shape), dtype=self.dtype, device=self.device)
            for i, lay in enumerate(self.net.layers):
                if isinstance(lay, Conv2d):
                    sizes[i] = (int(h.shape[-2]), int(h.shape[-1]))
                h, _ = lay.forward(h)
        return [
            ConvKernel(f"layer{i}.weight", lay.weight, (lay.stride, lay.stride), sizes.get(i))
            # zero padding: Sedghi et al.'s circular surrogate (circular=False)
            for i, lay in enumerate(self.net.layers)
            if isinstance(lay, Conv2d)
        ]

    def with_params(self, theta: Array) -> ArrayNetModel:
        """The same network with the flat parameter vector ``theta``."""
        return ArrayNetModel(
            self.net.with_params(self.unflatten(theta)), input_shape=self.input_shape
        )

    @property
    def flat_params(self) -> Array:
        """The current parameters as one flat vector."""
        return self.flatten(self.net.params)

    # ------------------------------------------------------------------ passes
    def _forward(self, x: Array) -> tuple[Array, list[Any]]:
        caches = []
        for lay in self.net.layers:
            x, cache = lay.forward(x)
            caches.append(cache)
        return x, caches

    def _tangent(
        self, caches: list[Any], dh: Array, vp: list[list[Array]] | None
    ) -> tuple[Array, list[Array]]:
        """Forward tangent; returns the output tangent and the tangent entering each layer."""
        entering = []
        for lay, cache, k in zip(self.net.layers, caches, range(len(caches)), strict=True):
            entering.append(dh)
            dp = None if vp is None or not lay.params else vp[k]
            dh = lay.jvp(cache, dh, dp)
        return dh, entering

    def _backward(
        self, caches: list[Any], g: Array, per_sample: bool = False, input_grad: bool = True
    ) -> tuple[Array | None, list[Array]]:
        """Backpropagate ``g``: the input cotangent and the parameter gradients, in order.

        Without ``input_grad`` the input cotangent is ``None``, and the backward pass stops at
        the lowest layer with parameters, which computes its parameter gradients alone (a
        convolution skips its im2col adjoint; the layers below it have no gradients to give).
        """
        layers = list(zip(self.net.layers, caches, strict=True))
        with_params = [i for i, (lay, _) in enumerate(layers) if lay.params]
        lowest = with_params[0] if with_params and not input_grad else 0
        grads: list[list[Array]] = [[] for _ in layers]
        for i in range(len(layers) - 1, lowest - 1, -1):
            lay, cache = layers[i]
            if i == lowest and not input_grad:
                grads[i] = lay.vjp_params(cache, g, per_sample)
                g = None
            else:
                g, grads[i] = lay.vjp(cache, g, per_sample)
        return g, [a for dp in grads for a in dp]

    # ------------------------------------------------------------------ protocol
    @finite_result("model output")
    def apply(self, x: Array) -> Array:
        """Outputs ``(N, C)``."""
        self.check_input(x)
        out = self.net(x)
        if out.ndim != 2:
            raise ModelError(f"the network must end in (N, C) outputs; got {tuple(out.shape)}")
        return out

    def jvp_input(self, x: Array, v: Array) -> Array:
        """``J_i v_i`` by forward-mode through the layers."""
        self.check_input(x)
        _, caches = self._forward(x)
        return self._tangent(caches, v, None)[0]

    def vjp_input(self, x: Array, u: Array) -> Array:
        """``J_iᵀ u_i`` by backpropagation."""
        self.check_input(x)
        _, caches = self._forward(x)
        return self._backward(caches, u)[0]

    def jvp_params(self, x: Array, v: Array) -> Array:
        """``G_i v`` by forward-mode with a parameter tangent."""
        self.check_input(x)
        _, caches = self._forward(x)
        vp = self._per_layer(self.unflatten(v))
        return self._tangent(caches, self.xp.zeros_like(x), vp)[0]

    def vjp_params(self, x: Array, u: Array) -> Array:
        """``Σ_i G_iᵀ u_i`` by backpropagation."""
        self.check_input(x)
        _, caches = self._forward(x)
        return self.flatten(self._backward(caches, u, input_grad=False)[1])

    def hvp(self, x: Array, y: Array, v: Array, loss: str) -> Array:
        """Exact ``H v`` by Pearlmutter's R-operator: R-forward, then R-backward."""
        return self.hvp_operator(x, y, loss)(v)

    def compressed_curvature(self, x: Array, y: Array, loss: Any, ggn: bool = False) -> Any:
        """The Hessian (or GGN) on the first dense layer's input span (:mod:`.compression`)."""
        return first_dense_compression(self, x, y, loss, ggn)

    def hvp_operator(self, x: Array, y: Array, loss: str) -> Any:
        """``v ↦ H v`` at a fixed batch, reusing one forward pass's caches."""
        self.check_input(x)
        check_loss(loss)
        z, caches = self._forward(x)
        return lambda v: self._hvp_cached(x, y, z, caches, v, loss)

    def _hvp_cached(
        self, x: Array, y: Array, z: Array, caches: list[Any], v: Array, loss: str
    ) -> Array:
        xp = self.xp
        n = int(x.shape[0])
        vp = self._per_layer(self.unflatten(v))
        rz, entering = self._tangent(caches, xp.zeros_like(x), vp)
        g = loss_gradient(z, y, loss) / n
        rg = apply_output_hessian(z, y, loss, rz) / n
        out: list[list[Array]] = []
        layers = list(zip(self.net.layers, caches, entering, vp, strict=True))
        for lay, cache, rh, vl in reversed(layers):
            g_next, _ = lay.vjp(cache, g)
            rg, rdp = lay.rvjp(cache, g, rg, rh, vl)
            g = g_next
            out.append(rdp)
        return self.flatten([a for rdp in reversed(out) for a in rdp])

    def jacobian_penalty_grad(self, x: Array, v: Array) -> tuple[Array, Array]:
        """``P = (1/N) Σ_i ‖J_i v_i‖²`` and its exact parameter gradient (``v`` held fixed).

        ``∇_θ P = (∂(J v)/∂θ)ᵀ (2 J v / N)`` is the directional derivative, along the input
        tangent ``v``, of the parameter VJP with a fixed cotangent — Pearlmutter's R-operator
        again (:ref:`theory-regularisers`, Hoffman et al. 2019), so no second autodiff system
        is needed.
        """
        self.check_input(x)
        xp = self.xp
        n = int(x.shape[0])
        _, caches = self._forward(x)
        jv, entering = self._tangent(caches, v, None)
        g = 2.0 * jv / n
        rg = xp.zeros_like(jv)
        out: list[list[Array]] = []
        for lay, cache, rh in reversed(list(zip(self.net.layers, caches, entering, strict=True))):
            zeros = [xp.zeros_like(p) for p in lay.params]
            g_next, _ = lay.vjp(cache, g)
            rg, rdp = lay.rvjp(cache, g, rg, rh, zeros)
            g = g_next
            out.append(rdp)
        grad = self.flatten([a for rdp in reversed(out) for a in rdp])
        return xp.sum(jv**2) / n, grad

    def loss(self, x: Array, y: Array, loss: str) -> Array:
        """Mean loss ``L``."""
        return loss_value(self.apply(x), y, loss)

    def loss_grad(self, x: Array, y: Array, loss: str) -> Array:
        """``∇_θ L`` (flat) by backpropagation."""
        self.check_input(x)
        z, caches = self._forward(x)
        g = loss_gradient(z, y, loss) / x.shape[0]
        return self.flatten(self._backward(caches, g, input_grad=False)[1])

    # ------------------------------------------------------------------ native dense paths
    def param_jacobian(self, x: Array) -> Array:
        """``(N, C, p)`` by the cheapest route of :mod:`.param_jacobian` that applies."""
        self.check_input(x)
        z, caches = self._forward(x)
        if isinstance(z, np.ndarray):
            out = jacobian_routes.by_pullbacks(self, z, caches)
            if out is not None:
                return out
        return jacobian_routes.by_passes(self, z, caches)

    def input_jacobian(self, x: Array) -> Array:
        """``(N, C, d)`` from the product form when the network is an MLP, else by backprop."""
        self.check_input(x)
        try:
            fac = self.layer_factors(x)
        except NotImplementedError:
            return self._input_jacobian_by_backprop(x)
        return self._right_multiply(
            output_side_product(self.xp, fac, int(x.shape[0])), fac.weights[0]
        )

    def _right_multiply(self, a: Array, w: Array) -> Array:
        """``A_i W`` for every sample as one GEMM: ``(N, C, k) · (k, d) → (N, C, d)``."""
        n, c, k = (int(t) for t in a.shape)
        return self.xp.reshape(self.xp.reshape(a, (n * c, k)) @ w, (n, c, int(w.shape[1])))

    def input_jacobian_factor(self, x: Array) -> Array:
        """``B``, ``(N, C, k)``: per-sample matrices with the singular values of ``J_i``.

        With the product form ``J_i = A_i W_1`` (``A_i = W_L D_{L−1,i} ⋯ D_{1,i}``, ``C × n_1``)
        and the thin QR ``W_1ᵀ = Q R`` (once per call, when ``n_1 < d``),
        ``J_i = (A_i Rᵀ) Qᵀ`` with orthonormal ``Q``: ``B_i = A_i Rᵀ`` has exactly the nonzero
        singular values of ``J_i`` at ``k = n_1`` columns instead of ``d`` — the per-sample
        SVDs of :func:`specinterp.jacobian_spectra` then run on ``C × n_1`` matrices. When
        ``n_1 ≥ d`` (``d`` the input dimension), ``B_i = J_i``.

        Without a product form (convolutions), on NumPy and for ``d ≥ 2C``: ``B_i = R_i``, the
        ``C × C`` triangular factor of ``J_iᵀ = Q_i R_i``, from the ``C`` backward passes a block
        of samples at a time (:func:`.jacobian_layout.r_factors`) — the ``(N, C, d)`` tensor is
        never formed.

        Raises
        ------
        NotImplementedError
            For networks without a product form on other namespaces, with ``d < 2C``, or whose
            backward passes (``N·C·d`` entries) exceed the dense Jacobian's default memory
            budget (then :func:`specinterp.input_jacobian` applies the caller's budget).

        """
        self.check_input(x)
        try:
            fac = self.layer_factors(x)
        except NotImplementedError:
            return self._backprop_factor(x)
        w1 = fac.weights[0]
        a = output_side_product(self.xp, fac, int(x.shape[0]))
        if int(w1.shape[0]) >= int(w1.shape[1]):
            return self._right_multiply(a, w1)
        _, r = self.xp.linalg.qr(w1.T)  # W_1ᵀ = Q R, (d, n_1) and (n_1, n_1)
        return self._right_multiply(a, r.T)

    def _backprop_factor(self, x: Array) -> Array:
        """``R_i`` ``(N, C, C)`` with ``σ(R_i) = σ(J_i)`` for a network without a product form."""
        if not isinstance(x, np.ndarray):
            raise NotImplementedError("the R factors are computed for NumPy inputs")
        n, d = int(x.shape[0]), math.prod(x.shape[1:])
        c = math.prod(self.output_shape(x))
        nbytes = n * c * d * (self.xp.finfo(self.dtype).bits // 8)
        if d < 2 * c or nbytes > DEFAULT_MAX_BYTES:
            raise NotImplementedError("R factors pay for d ≥ 2C within the dense budget")
        return r_factors(self._input_jacobian_rows(x))

    def _input_jacobian_by_backprop(self, x: Array) -> Array:
        """``(N, C, d)`` for networks without a product form.

        One forward pass, then ``C`` input-only backward passes (no parameter gradients), with
        the batch axis last (:meth:`~specinterp.adapters.arraynet.layer.Layer.input_pullback`:
        each layer's pullback is prepared once from its cache for the ``C`` passes).
        """
        return stack_transposed(self._input_jacobian_rows(x))

    def _input_jacobian_rows(self, x: Array) -> list[Array]:
        """Row ``a`` of every ``J_i`` as one ``(d, N)`` array, for ``a = 0, …, C − 1``."""
        z, caches = self._forward(x)
        n = int(z.shape[0])
        passes = batch_last_passes(list(self.net.layers), caches, z)
        return [self.xp.reshape(g, (-1, n)) for _, i, g in passes if i == -1]

    def layer_factors(self, x: Array) -> LayerFactors:
        """The product form of an MLP (see :func:`.product_form.layer_factors`).

        Raises
        ------
        NotImplementedError
            For networks without that structure (e.g. convolutions).

        """
        self.check_input(x)
        return layer_factors(self.net, x)

    def preactivations(self, x: Array) -> list[Array]:
        """Inputs ``z_l`` of every activation of an MLP, each ``(N, n_l)`` (:ref:`theory-t4`)."""
        return self.layer_factors(x).preactivations
