"""The chain-rule product form ``J(x) = W_L D_{L−1}(x) W_{L−1} ⋯ D_1(x) W_1`` of an MLP.

(:ref:`theory-notation`, :ref:`theory-t3`); its pre-activations give the certified radius of
T4 (:ref:`theory-t4`). Other adapters (the JAX MLPs) produce the same :class:`LayerFactors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from specinterp import _xp

from .activations import Activation
from .dense import Dense, Flatten

if TYPE_CHECKING:
    from .network import Sequential

Array = Any

__all__ = ["LayerFactors", "layer_factors", "output_side_product"]


@dataclass(frozen=True)
class LayerFactors:
    """The product form ``J(x_i) = W_L D_{L−1}(x_i) W_{L−1} ⋯ D_1(x_i) W_1`` of an MLP.

    ``weights[l]`` is ``W_{l+1}`` ``(n_{l+1}, n_l)``; ``diagonals[l]`` is ``diag D_{l+1}``
    per sample, ``(N, n_{l+1})``; ``preactivations[l]`` is ``z_{l+1}`` ``(N, n_{l+1})``.
    ``inputs[l]`` is the input ``h_l`` of the dense layer ``W_{l+1}`` ``(N, n_l)`` (``h_0 = x``)
    and ``biases[l]`` whether that layer has a bias; with them, and with the weights and biases
    being the model's parameters (all of them, or those ``trained`` marks), the NTK has the
    layer-wise form of :mod:`specinterp.structured_ntk` (:ref:`theory-structured-ntk`).
    """

    weights: list[Array]
    diagonals: list[Array]
    preactivations: list[Array]
    piecewise_linear: bool
    #: ``Lip(φ_l)`` of each activation where known (T3's last bound), else ``None``
    lipschitz: tuple[float, ...] | None = None
    #: the input of each dense layer, ``(N, n_l)``, where the adapter records it
    inputs: list[Array] | None = None
    #: whether each dense layer has a bias
    biases: tuple[bool, ...] | None = None
    #: per dense layer, whether its weight and its bias are differentiated (``None``: all are;
    #: a frozen layer of a torch module is not)
    trained: tuple[tuple[bool, bool], ...] | None = None


def output_side_product(xp: Any, fac: LayerFactors, n: int) -> Array:
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


def layer_factors(net: Sequential, x: Array) -> LayerFactors:
    """The product form of an MLP at the batch ``x``.

    The network must be an optional leading ``Flatten``, then ``Dense`` layers separated by
    elementwise activations, ending in ``Dense``.

    Raises
    ------
    NotImplementedError
        For networks without that structure (e.g. convolutions).

    """
    layers = list(net.layers)
    h = x
    if layers and isinstance(layers[0], Flatten):
        h, _ = layers[0].forward(h)
        layers = layers[1:]
    if h.ndim != 2 or not layers or not isinstance(layers[-1], Dense):
        raise NotImplementedError("layer_factors needs an MLP: Dense layers and activations")
    weights, diags, pre, lips, inputs, biases = [], [], [], [], [], []
    pwl = True
    expect_dense = True
    for lay in layers:
        if expect_dense and isinstance(lay, Dense):
            inputs.append(h)
            biases.append(lay.bias is not None)
            h, _ = lay.forward(h)
            weights.append(lay.weight)
            expect_dense = False
        elif not expect_dense and isinstance(lay, Activation):
            pre.append(h)
            diags.append(lay.df(h))
            pwl = pwl and lay.piecewise_linear
            lips.append(lay.lipschitz)
            h, _ = lay.forward(h)
            expect_dense = True
        else:
            raise NotImplementedError(
                "layer_factors needs Dense and activation layers in alternation"
            )
    return LayerFactors(weights, diags, pre, pwl, tuple(lips), inputs, tuple(biases))
