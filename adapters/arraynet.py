"""Hand-written networks on any array namespace (NumPy on a CPU, CuPy on a GPU).

``Sequential([Dense(W, b), ReLU(), ...])`` is a plain list of layers with analytic JVPs, VJPs
and Pearlmutter R-operators (see :mod:`specinterp.adapters._arraynet_layers`), so every
operator of the framework — input and parameter Jacobians, NTK, exact Hessian-vector products,
GGN — is computed without an autodiff framework. MLPs also expose the chain-rule product form
``J(x) = W_L D_{L−1}(x) ⋯ D_1(x) W_1`` (mathematics §0, T3) and their pre-activations (T4).

Parameters are flattened in layer order, weight before bias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from specinterp import _xp
from specinterp._guards import finite_result
from specinterp.errors import ModelError, ShapeError
from specinterp.losses import apply_output_hessian, check_loss, loss_gradient, loss_value
from specinterp.model import ModelBase
from specinterp.operators import output_unit

from ._arraynet_layers import (
    GELU,
    Activation,
    Conv2d,
    Dense,
    Flatten,
    Layer,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softplus,
    Tanh,
)
from ._arraynet_training import train

Array = Any

__all__ = [
    "GELU",
    "ArrayNetModel",
    "Conv2d",
    "Dense",
    "Flatten",
    "LayerFactors",
    "LeakyReLU",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "from_torch",
    "init_mlp",
    "train",
]


@dataclass(frozen=True)
class Sequential:
    """A feed-forward network: layers applied in order to a batch ``(N, ...)``."""

    layers: tuple[Layer, ...]

    def __init__(self, layers: Sequence[Layer]) -> None:
        layers = tuple(layers)
        if not layers or not all(isinstance(lay, Layer) for lay in layers):
            raise ModelError("Sequential needs a non-empty list of arraynet layers")
        object.__setattr__(self, "layers", layers)

    @property
    def params(self) -> list[Array]:
        """All parameter arrays in layer order (weight before bias)."""
        return [p for lay in self.layers for p in lay.params]

    def with_params(self, params: Sequence[Array]) -> Sequential:
        """The same architecture with new parameter arrays (same order as :attr:`params`)."""
        out, i = [], 0
        for lay in self.layers:
            k = len(lay.params)
            out.append(lay.with_params(list(params[i : i + k])))
            i += k
        return Sequential(out)

    def __call__(self, x: Array) -> Array:
        """Outputs of the network on a batch ``x``."""
        for lay in self.layers:
            x, _ = lay.forward(x)
        return x


@dataclass(frozen=True)
class LayerFactors:
    """The product form ``J(x_i) = W_L D_{L−1}(x_i) W_{L−1} ⋯ D_1(x_i) W_1`` of an MLP.

    ``weights[l]`` is ``W_{l+1}`` ``(n_{l+1}, n_l)``; ``diagonals[l]`` is ``diag D_{l+1}``
    per sample, ``(N, n_{l+1})``; ``preactivations[l]`` is ``z_{l+1}`` ``(N, n_{l+1})``.
    """

    weights: list[Array]
    diagonals: list[Array]
    preactivations: list[Array]
    piecewise_linear: bool


def _output_side_product(xp: Any, fac: LayerFactors, n: int) -> Array:
    """``A_i = W_L D_{L−1,i} W_{L−1} ⋯ D_{1,i}``, ``(N, C, n_1)``, multiplied from the output side.

    ``N·C·Σ n_l n_{l−1}`` flops with ``C`` (outputs) small; each step is one GEMM for the batch.
    A single ``Dense`` layer (a linear model, ``J_i = W_1``) gives ``A_i = I_C``.
    """
    w_out = fac.weights[-1]
    c = int(w_out.shape[0])
    if not fac.diagonals:
        eye = xp.eye(c, dtype=w_out.dtype, device=_xp.device(w_out))
        return xp.broadcast_to(eye, (n, c, c))
    a = xp.broadcast_to(w_out, (n, *w_out.shape))
    for w, d in zip(reversed(fac.weights[1:-1]), reversed(fac.diagonals[1:]), strict=True):
        rows = xp.reshape(a * d[:, None, :], (n * c, int(w.shape[0])))
        a = xp.reshape(rows @ w, (n, c, int(w.shape[1])))
    return a * fac.diagonals[0][:, None, :]


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
        self, caches: list[Any], g: Array, per_sample: bool = False
    ) -> tuple[Array, list[Array]]:
        grads: list[list[Array]] = []
        for lay, cache in zip(reversed(self.net.layers), reversed(caches), strict=True):
            g, dp = lay.vjp(cache, g, per_sample)
            grads.append(dp)
        flat = [a for dp in reversed(grads) for a in dp]
        return g, flat

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
        return self.flatten(self._backward(caches, u)[1])

    def hvp(self, x: Array, y: Array, v: Array, loss: str) -> Array:
        """Exact ``H v`` by Pearlmutter's R-operator: R-forward, then R-backward."""
        return self.hvp_operator(x, y, loss)(v)

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
        again (mathematics §5 a, Hoffman et al. 2019), so no second autodiff system is needed.
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
        return self.flatten(self._backward(caches, loss_gradient(z, y, loss) / x.shape[0])[1])

    # ------------------------------------------------------------------ native dense paths
    def param_jacobian(self, x: Array) -> Array:
        """``(N, C, p)``: one backward pass per output with per-sample parameter gradients."""
        self.check_input(x)
        xp = self.xp
        z, caches = self._forward(x)
        n, c = int(z.shape[0]), int(z.shape[1])
        rows = []
        for a in range(c):
            _, per = self._backward(caches, output_unit(z, a), per_sample=True)
            rows.append(xp.concat([xp.reshape(g, (n, -1)) for g in per], axis=1))
        return xp.stack(rows, axis=1)

    def input_jacobian(self, x: Array) -> Array:
        """``(N, C, d)`` from the product form when the network is an MLP, else by backprop."""
        self.check_input(x)
        try:
            fac = self.layer_factors(x)
        except NotImplementedError:
            return self._input_jacobian_by_backprop(x)
        return self._right_multiply(
            _output_side_product(self.xp, fac, int(x.shape[0])), fac.weights[0]
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

        Raises
        ------
        NotImplementedError
            For networks without a product form (use :meth:`input_jacobian`).

        """
        self.check_input(x)
        fac = self.layer_factors(x)
        w1 = fac.weights[0]
        a = _output_side_product(self.xp, fac, int(x.shape[0]))
        if int(w1.shape[0]) >= int(w1.shape[1]):
            return self._right_multiply(a, w1)
        _, r = self.xp.linalg.qr(w1.T)  # W_1ᵀ = Q R, (d, n_1) and (n_1, n_1)
        return self._right_multiply(a, r.T)

    def _input_jacobian_by_backprop(self, x: Array) -> Array:
        """``(N, C, d)`` for networks without a product form.

        One forward pass, then ``C`` input-only backward passes (no parameter gradients).
        """
        xp = self.xp
        z, caches = self._forward(x)
        n, c = int(z.shape[0]), int(z.shape[1])
        rows = []
        for a in range(c):
            g = output_unit(z, a)
            for lay, cache in zip(reversed(self.net.layers), reversed(caches), strict=True):
                g = lay.vjp_input(cache, g)
            rows.append(xp.reshape(g, (n, -1)))
        return xp.stack(rows, axis=1)

    def layer_factors(self, x: Array) -> LayerFactors:
        """The product form of an MLP.

        The network must be an optional leading ``Flatten``, then ``Dense`` layers separated by
        elementwise activations, ending in ``Dense``.

        Raises
        ------
        NotImplementedError
            For networks without that structure (e.g. convolutions).

        """
        self.check_input(x)
        xp = self.xp
        layers = list(self.net.layers)
        h = x
        if layers and isinstance(layers[0], Flatten):
            h, _ = layers[0].forward(h)
            layers = layers[1:]
        if h.ndim != 2 or not layers or not isinstance(layers[-1], Dense):
            raise NotImplementedError("layer_factors needs an MLP: Dense layers and activations")
        weights, diags, pre = [], [], []
        pwl = True
        expect_dense = True
        for lay in layers:
            if expect_dense and isinstance(lay, Dense):
                h, _ = lay.forward(h)
                weights.append(lay.weight)
                expect_dense = False
            elif not expect_dense and isinstance(lay, Activation):
                pre.append(h)
                diags.append(lay.df(h))
                pwl = pwl and lay.piecewise_linear
                h, _ = lay.forward(h)
                expect_dense = True
            else:
                raise NotImplementedError(
                    "layer_factors needs Dense and activation layers in alternation"
                )
        del xp
        return LayerFactors(weights, diags, pre, pwl)

    def preactivations(self, x: Array) -> list[Array]:
        """Inputs ``z_l`` of every activation of an MLP, each ``(N, n_l)`` (mathematics, T4)."""
        return self.layer_factors(x).preactivations


# ---------------------------------------------------------------------- construction
def init_mlp(
    widths: Sequence[int],
    activation: Activation | None = None,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    bias: bool = True,
) -> Sequential:
    """A randomly initialised MLP ``widths[0] → … → widths[-1]`` (He-normal weights, zero bias).

    Parameters
    ----------
    widths : sequence of int
        Layer widths, input first.
    activation : Activation
        Between Dense layers (default ``ReLU()``).
    seed : int
        Seeds the weights (the same numbers on every backend).
    xp, dtype
        Namespace and dtype of the parameters (default NumPy float64).
    bias : bool
        Whether Dense layers have a bias.

    """
    if xp is None:
        import array_api_compat.numpy as xp
    dtype = xp.float64 if dtype is None else dtype
    activation = ReLU() if activation is None else activation
    rng = _xp.Generator(seed, xp)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(pairwise(widths)):
        w = rng.normal((n_out, n_in), dtype=dtype, scale=math.sqrt(2.0 / n_in))
        b = xp.zeros((n_out,), dtype=dtype) if bias else None
        layers.append(Dense(w, b))
        if i < len(widths) - 2:
            layers.append(activation)
    return Sequential(layers)


def from_torch(module: Any, *, xp: Any = None) -> Sequential:
    """Copy a ``torch.nn.Sequential`` of supported layers into an arraynet ``Sequential``.

    Supported: ``Linear``, ``Conv2d`` (zero padding, dilation 1, groups 1, square stride and
    padding), ``Flatten``, ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``Softplus`` and
    ``GELU(approximate="tanh")``. Weights are copied to the host (NumPy by default, or
    ``xp``).
    """
    import torch

    def arr(t: Any) -> Array:
        a = t.detach().cpu().numpy()
        return a if xp is None else xp.asarray(a)

    if not isinstance(module, torch.nn.Sequential):
        raise ModelError("from_torch copies a torch.nn.Sequential")
    layers: list[Layer] = []
    for m in module:
        if isinstance(m, torch.nn.Linear):
            layers.append(Dense(arr(m.weight), None if m.bias is None else arr(m.bias)))
        elif isinstance(m, torch.nn.Conv2d):
            if (
                m.groups != 1
                or m.dilation != (1, 1)
                or m.padding_mode != "zeros"
                or len({*m.stride}) != 1
                or isinstance(m.padding, str)
                or len({*m.padding}) != 1
            ):
                raise ModelError(f"unsupported Conv2d configuration: {m}")
            layers.append(
                Conv2d(
                    arr(m.weight),
                    None if m.bias is None else arr(m.bias),
                    stride=m.stride[0],
                    padding=m.padding[0],
                )
            )
        elif isinstance(m, torch.nn.Flatten):
            layers.append(Flatten())
        elif isinstance(m, torch.nn.ReLU):
            layers.append(ReLU())
        elif isinstance(m, torch.nn.LeakyReLU):
            layers.append(LeakyReLU(m.negative_slope))
        elif isinstance(m, torch.nn.Tanh):
            layers.append(Tanh())
        elif isinstance(m, torch.nn.Sigmoid):
            layers.append(Sigmoid())
        elif isinstance(m, torch.nn.Softplus):
            layers.append(Softplus(m.beta))
        elif isinstance(m, torch.nn.GELU) and m.approximate == "tanh":
            layers.append(GELU())
        else:
            raise ModelError(f"from_torch does not support {type(m).__name__} ({m})")
    return Sequential(layers)
