"""The product form of JAX MLPs: weights, activation derivatives, pre-activations.

For an Equinox ``eqx.nn.MLP``, and a Flax ``nn.Sequential`` (linen) or ``nnx.Sequential``
(NNX) of dense layers and activation functions in alternation.

``J(x) = W_L D_{L−1}(x) W_{L−1} ⋯ D_1(x) W_1`` with ``D_l = diag σ'(z_l)`` (:ref:`theory-objects`),
the structure the certified radius (T4) and the layer gains (T3) use. ReLU and leaky ReLU are
piecewise linear; other activations give the product form but no certified radius.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .arraynet import LayerFactors

__all__ = ["linen_sequential_factors", "mlp_factors", "nnx_sequential_factors"]

_PROBE = jnp.asarray([-3.0, -0.5, 0.0, 0.25, 2.0])


def _is_identity(fn: Any) -> bool:
    try:
        return bool(jnp.array_equal(fn(_PROBE), _PROBE))
    except Exception:
        return False


def mlp_factors(module: Any, x: jax.Array) -> LayerFactors:
    """:class:`~specinterp.adapters.arraynet.LayerFactors` of an ``eqx.nn.MLP`` at ``x`` ``(N, d)``.

    Raises
    ------
    NotImplementedError
        For any other module, or an MLP with a final activation that is not the identity.

    """
    import equinox as eqx

    if not isinstance(module, eqx.nn.MLP) or x.ndim != 2:
        raise NotImplementedError("the product form is known for eqx.nn.MLP on (N, d) inputs")
    if not _is_identity(module.final_activation):
        raise NotImplementedError("the MLP's final activation is not the identity")
    act = module.activation
    linears = [(layer.weight, layer.bias) for layer in module.layers]
    return _alternating(linears, [act] * (len(linears) - 1), x)


def nnx_sequential_factors(module: Any, x: jax.Array) -> LayerFactors:
    """:class:`~specinterp.adapters.arraynet.LayerFactors` of an ``nnx.Sequential`` MLP.

    The layers must alternate ``nnx.Linear`` and an elementwise activation function, starting
    and ending with ``nnx.Linear``.

    Raises
    ------
    NotImplementedError
        For any other module.

    """
    from flax import nnx

    layers = list(getattr(module, "layers", []))
    if not isinstance(module, nnx.Sequential) or not _alternates(layers, nnx.Linear, nnx.Module, x):
        raise NotImplementedError(
            "the product form is known for an nnx.Sequential of nnx.Linear layers and "
            "activation functions, in alternation"
        )
    linears = [
        (lin.kernel[...].T, None if lin.bias is None else lin.bias[...]) for lin in layers[::2]
    ]
    return _alternating(linears, layers[1::2], x)


def _alternates(layers: list[Any], dense: type, module: type, x: jax.Array) -> bool:
    """Whether ``layers`` are ``dense, activation, …, dense`` (activations plain functions)."""
    return (
        x.ndim == 2
        and len(layers) % 2 == 1
        and all(isinstance(lay, dense) for lay in layers[::2])
        and all(callable(act) and not isinstance(act, module) for act in layers[1::2])
    )


def _alternating(
    linears: list[tuple[jax.Array, jax.Array | None]], acts: list[Any], x: jax.Array
) -> LayerFactors:
    """Product form of ``W_1, σ_1, W_2, …, W_L`` given ``(W (out, in), b)`` pairs."""
    weights, diags, pre, inputs = [], [], [], []
    pwl = True
    h = x
    for i, (w, b) in enumerate(linears):
        inputs.append(h)
        z = h @ w.T + (0.0 if b is None else b)
        weights.append(w)
        if i < len(acts):
            act = acts[i]
            pre.append(z)
            diags.append(jax.vmap(jax.vmap(jax.grad(lambda t, act=act: act(t))))(z))
            pwl = pwl and (act is jax.nn.relu or act is jax.nn.leaky_relu)
            h = act(z)
    biases = tuple(b is not None for _, b in linears)
    return LayerFactors(weights, diags, pre, pwl, inputs=inputs, biases=biases)


def linen_sequential_factors(module: Any, params: Any, x: jax.Array) -> LayerFactors:
    """:class:`~specinterp.adapters.arraynet.LayerFactors` of a linen ``nn.Sequential`` MLP.

    ``params`` is the module's ``"params"`` collection.

    Raises
    ------
    NotImplementedError
        Unless the layers alternate ``nn.Dense`` and activation functions (Dense first and last).

    """
    import flax.linen as nn

    layers = list(getattr(module, "layers", []))
    if not isinstance(module, nn.Sequential) or not _alternates(layers, nn.Dense, nn.Module, x):
        raise NotImplementedError(
            "the product form is known for an nn.Sequential of nn.Dense layers and activation "
            "functions, in alternation"
        )
    linears = [
        (params[f"layers_{i}"]["kernel"].T, params[f"layers_{i}"].get("bias"))
        for i in range(0, len(layers), 2)
    ]
    return _alternating(linears, layers[1::2], x)
