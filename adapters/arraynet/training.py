"""The arraynet trainer: mini-batch SGD / Adam on the hand-written backprop."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from specinterp import _xp
from specinterp.losses import check_loss

from .model import ArrayNetModel

if TYPE_CHECKING:
    from .network import Sequential

Array = Any


def train(
    net: Sequential,
    x: Array,
    y: Array,
    *,
    loss: str = "cross_entropy",
    optimizer: str = "adam",
    lr: float = 1e-3,
    epochs: int = 20,
    batch_size: int = 64,
    seed: int = 0,
    weight_decay: float = 0.0,
    jacobian_penalty: float = 0.0,
) -> Sequential:
    """Train ``net`` with mini-batch SGD or Adam (Kingma & Ba 2015) and return the new network.

    Gradients come from the hand-written backprop; the shuffling and the penalty's random
    directions are seeded, so a run is reproducible on every backend. ``jacobian_penalty = λ``
    adds ``λ · mean_i ‖J_i v_i‖²`` with fresh unit ``v_i`` each step (:ref:`theory-regularisers`:
    an unbiased estimate of ``λ · mean_i ‖J_i‖_F² / d``).
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
    check_loss(loss)
    model = ArrayNetModel(net)
    xp = model.xp
    theta = model.flatten(net.params)
    m1 = xp.zeros_like(theta)
    m2 = xp.zeros_like(theta)
    rng = np.random.default_rng(seed)
    n = int(x.shape[0])
    step = 0
    for _ in range(int(epochs)):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = xp.asarray(order[start : start + batch_size], device=_xp.device(x))
            xb, yb = xp.take(x, idx, axis=0), xp.take(y, idx, axis=0)
            model = ArrayNetModel(net.with_params(model.unflatten(theta)))
            g = model.loss_grad(xb, yb, loss) + weight_decay * theta
            if jacobian_penalty:
                dirs = rng.standard_normal((int(xb.shape[0]), math.prod(xb.shape[1:])))
                dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
                v = xp.reshape(
                    xp.asarray(dirs, dtype=xb.dtype, device=_xp.device(xb)), tuple(xb.shape)
                )
                g = g + jacobian_penalty * model.jacobian_penalty_grad(xb, v)[1]
            step += 1
            if optimizer == "sgd":
                theta = theta - lr * g
            else:
                m1 = 0.9 * m1 + 0.1 * g
                m2 = 0.999 * m2 + 0.001 * g**2
                theta = theta - lr * (m1 / (1 - 0.9**step)) / (
                    xp.sqrt(m2 / (1 - 0.999**step)) + 1e-8
                )
    return net.with_params(model.unflatten(theta))
