"""The dense parameter Jacobian ``G`` ``(N, C, p)`` of an arraynet network, by two routes.

* On NumPy: ``C`` input-side backward passes with the batch axis last
  (:meth:`~.layer.Layer.input_pullback`), keeping each parameterised layer's output cotangent
  for every output; then each layer forms its per-sample gradients for *all* ``C`` outputs at
  once (:meth:`~.layer.Layer.param_jacobian_block`) straight into its columns of ``G`` — a dense
  layer's ``∂f_a/∂W = B[a] ⊗ h`` as one broadcast product in place (for an MLP these cotangents
  are the back-propagated signals ``B_l`` of the layer-wise NTK, :ref:`theory-structured-ntk`),
  a convolution's as one batched product with ``C·c_out`` rows per sample.
* Otherwise: one batch-first backward pass per output with per-sample gradients.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from specinterp import _xp
from specinterp.operators import output_unit

from .jacobian_layout import batch_last_passes

Array = Any

__all__ = ["by_passes", "by_pullbacks"]


def by_passes(model: Any, z: Array, caches: list[Any]) -> Array:
    """``C`` batch-first backward passes with per-sample gradients, written into ``G``."""
    xp = model.xp
    n, c = int(z.shape[0]), int(z.shape[1])
    if not _xp.has_writeable_storage(z):
        rows = []
        for a in range(c):
            _, per = model._backward(caches, output_unit(z, a), True, input_grad=False)
            rows.append(xp.concat([xp.reshape(g, (n, -1)) for g in per], axis=1))
        return xp.stack(rows, axis=1)
    # each per-sample gradient is written once, into its place (no concat, no stack)
    out = xp.empty((n, c, model.num_params), dtype=z.dtype, device=_xp.device(z))
    for a in range(c):
        _, per = model._backward(caches, output_unit(z, a), True, input_grad=False)
        start = 0
        for g in per:
            size = math.prod(g.shape[1:])
            out[:, a, start : start + size] = xp.reshape(g, (n, size))
            start += size
    return out


def by_pullbacks(model: Any, z: np.ndarray, caches: list[Any]) -> np.ndarray | None:
    """All ``C`` outputs at once per layer (NumPy).

    Returns ``None`` where the kept cotangents (``C·N`` times each parameterised layer's
    output) would outweigh ``G`` itself.
    """
    layers = list(model.net.layers)
    n, c = int(z.shape[0]), int(z.shape[1])
    ranked = {i for i, lay in enumerate(layers) if lay.params}
    if not ranked:
        return np.zeros((n, c, 0), dtype=z.dtype)
    lowest = min(ranked)
    kept: dict[int, np.ndarray] = {}
    total, limit = 0, 2 * n * c * model.num_params + 2**24  # entries
    for a, i, g in batch_last_passes(layers, caches, z, lowest, through=False):
        if i not in ranked:
            continue
        if i not in kept:
            total += c * g.size
            if total > limit:
                return None
            kept[i] = np.empty((n, c, *g.shape[:-1]), dtype=g.dtype)
        # batch-first, so that each sample's cotangents for all C outputs are one contiguous
        # block: the layers' per-sample products then run as BLAS calls on it
        np.copyto(kept[i][:, a], np.moveaxis(g, -1, 0))
    out = np.empty((n, c, model.num_params), dtype=z.dtype)
    start = 0
    for i, lay in enumerate(layers):
        size = sum(math.prod(p.shape) for p in lay.params)
        if size:
            lay.param_jacobian_block(caches[i], kept[i], out[:, :, start : start + size])
            start += size
    return out
