"""The product form of a torch ``nn.Sequential`` MLP: weights, activation derivatives, inputs.

``[Flatten,] Linear, φ, Linear, …, φ, Linear`` with elementwise activations ``φ`` (the modules
in :data:`ELEMENTWISE`): ``J(x) = W_L D_{L−1}(x) ⋯ D_1(x) W_1`` with ``D_l = diag φ'(z_l)``
(:ref:`theory-notation`), each dense layer's input and bias recorded for the layer-wise NTK
(:ref:`theory-structured-ntk`). ``φ'`` is one forward-mode product of the activation with a
vector of ones (exact for an elementwise function).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrize import is_parametrized

from .arraynet import LayerFactors

__all__ = ["ELEMENTWISE", "dense_stack", "sequential_factors"]

#: activation modules that act entry by entry (so their Jacobian is a diagonal)
ELEMENTWISE = (
    nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU,
    nn.Softplus, nn.Mish, nn.Hardtanh, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid,
    nn.Softsign, nn.Tanhshrink,
)  # fmt: skip
_KINK_AT_ZERO = (nn.ReLU, nn.LeakyReLU)  # piecewise linear with the one kink T4 certifies


def dense_stack(module: Any, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, Any]]]:
    """The input (flattened where the stack starts so) and ``(name, activation)`` per ``Linear``.

    The last layer's activation is ``None``.

    Raises
    ------
    NotImplementedError
        Unless ``module`` is ``[Flatten,] Linear, φ, Linear, …, φ, Linear`` with elementwise
        ``φ`` (convolutions, residual blocks, normalisation layers, … are not).

    """
    layers = list(module.named_children()) if isinstance(module, nn.Sequential) else []
    h = x
    if layers and isinstance(layers[0][1], nn.Flatten) and layers[0][1].start_dim == 1:
        h = torch.flatten(h, 1)
        layers = layers[1:]
    shape_ok = bool(layers) and len(layers) % 2 == 1 and h.ndim == 2
    if not (
        shape_ok
        and all(isinstance(lay, nn.Linear) and not is_parametrized(lay) for _, lay in layers[::2])
        and all(isinstance(act, ELEMENTWISE) for _, act in layers[1::2])
    ):
        raise NotImplementedError(
            "the product form is known for an nn.Sequential of Linear layers and elementwise "
            "activations in alternation (optionally after nn.Flatten())"
        )
    acts = [act for _, act in layers[1::2]] + [None]
    return h, [(name, act) for (name, _), act in zip(layers[::2], acts, strict=True)]


def sequential_factors(
    module: Any,
    tensors: dict[str, torch.Tensor],
    x: torch.Tensor,
    differentiated: set[str] | None = None,
) -> Any:
    """:class:`~specinterp.adapters.arraynet.LayerFactors` of an ``nn.Sequential`` MLP at ``x``.

    ``tensors`` maps the module's parameter names to the values to use (the model's current
    parameters); ``differentiated`` names those the model differentiates (default: all), which
    the factors record per layer (``trained``).

    Raises
    ------
    NotImplementedError
        For any other module (convolutions, residual blocks, normalisation layers, …).

    """
    h, layers = dense_stack(module, x)
    weights, diags, pre, inputs, biases = [], [], [], [], []
    pwl = True
    for name, act in layers:
        w, b = tensors[f"{name}.weight"], tensors.get(f"{name}.bias")
        inputs.append(h)
        biases.append(b is not None)
        weights.append(w)
        z = h @ w.T if b is None else torch.addmm(b, h, w.T)
        if act is not None:
            pre.append(z)
            # on a copy: an in-place activation (ReLU(inplace=True)) would overwrite z_l
            h, d = torch.func.jvp(act, (z.clone(),), (torch.ones_like(z),))
            diags.append(d)
            pwl = pwl and isinstance(act, _KINK_AT_ZERO)
    trained = None
    if differentiated is not None:
        trained = tuple(
            (f"{n}.weight" in differentiated, f"{n}.bias" in differentiated) for n, _ in layers
        )
    return LayerFactors(
        weights, diags, pre, pwl, inputs=inputs, biases=tuple(biases), trained=trained
    )
