"""The Hessian and GGN of an arraynet network on the span of its first dense layer's inputs.

Where the first layer with parameters is a :class:`~.dense.Dense` (after parameter-free layers
such as ``Flatten``) and the batch has fewer samples ``N`` than that layer has inputs ``n_0``,
the loss depends on its weight ``W`` only through ``W Q`` for ``Q`` (``n_0 × N``) orthonormal
columns spanning the inputs: both curvatures vanish on the other ``n_1 (n_0 − N)`` directions
of ``W``, and on the rest they are those of the network whose first weight is ``W Q``, at
inputs ``h_0 Q`` (:ref:`theory-mlp-hvp`, the first layer's null space).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from specinterp.linalg.compression import weight_block_maps

from .dense import Dense
from .network import Sequential

Array = Any

__all__ = ["first_dense_compression"]


def first_dense_compression(
    model: Any, x: Array, y: Array, loss: Any, ggn: bool = False
) -> tuple[Callable[[Array], Array], int, Callable[[Array], Array], Callable[[Array], Array]]:
    """``(matvec, m, lift, restrict)`` of the Hessian (GGN with ``ggn``) of ``model``'s loss.

    Raises
    ------
    NotImplementedError
        Unless the first layer with parameters is a ``Dense`` whose inputs (after the
        parameter-free layers before it) are ``(N, n_0)`` with ``N < n_0``.

    """
    from specinterp.model_operators import GGNOperator, HessianOperator

    from .model import ArrayNetModel

    model.check_input(x)
    layers = list(model.net.layers)
    first = next(i for i, lay in enumerate(layers) if lay.params)
    h = x
    for lay in layers[:first]:
        h, _ = lay.forward(h)
    dense = layers[first]
    if not isinstance(dense, Dense) or h.ndim != 2 or int(h.shape[0]) >= int(h.shape[1]):
        raise NotImplementedError("the first dense layer's inputs span its whole input space")
    xp = model.xp
    q = xp.linalg.qr(h.T)[0]  # (d, n): its span contains every input row
    small_net = Sequential([Dense(dense.weight @ q, dense.bias), *layers[first + 1 :]])
    small, h_small = ArrayNetModel(small_net), h @ q
    curvature = GGNOperator if ggn else HessianOperator  # the reduced network's own products
    matvec = curvature(small, h_small, y, loss).matvec
    # the first weight leads the flat vector: no layer before it has parameters
    lift, restrict = weight_block_maps(q, int(dense.weight.shape[0]), 0)
    return matvec, small.num_params, lift, restrict
