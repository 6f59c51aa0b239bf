"""The Gram matrix ``G Gᵀ`` of a wide matrix from its upper block triangle (the NTK's product).

Used by :func:`specinterp.operators.ntk`, the layer-wise NTK
(:mod:`specinterp.structured_ntk`) and the JAX adapter's compiled NTK.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

from . import _xp

Array = Any

__all__ = ["GRAM_BLOCKS", "gram"]


#: row blocks of :func:`gram`; the products cost (b + 1) / (2b) of the full ``G Gᵀ``
GRAM_BLOCKS = 8


def gram(g: Array) -> Array:
    """``G Gᵀ`` from the blocks on and above the diagonal only, mirrored below.

    For ``G`` of shape ``(m, p)`` with ``p ≫ m`` (Jacobians: ``m = N·C`` rows, ``p``
    parameters) the products dominate the NTK; a plain ``G @ G.T`` computes both triangles.
    With ``b`` row blocks this costs ``(b + 1) / (2b)`` of it (56 % at ``b = 8``), and the
    result is exactly symmetric. Small ``m`` (under 512 rows) takes the single product. JAX
    arrays run it as one compiled program (eager JAX dispatches each block product alone, at
    about half the speed of the compiled one on the CPU).
    """
    xp = _xp.namespace(g)
    if _xp.backend_name(xp) == "jax":
        return _jax_gram()(g)
    return _gram_blocks(xp, g)


@functools.cache
def _jax_gram() -> Any:
    import jax

    return jax.jit(lambda g: _gram_blocks(_xp.namespace(g), g))


def _gram_blocks(xp: Any, g: Array) -> Array:
    m = int(g.shape[0])
    if m < 512:
        out = g @ g.T
        return 0.5 * (out + out.T)
    edges = [round(i * m / GRAM_BLOCKS) for i in range(GRAM_BLOCKS + 1)]
    rows = [g[a:b, :] for a, b in itertools.pairwise(edges)]
    upper = {(i, j): rows[i] @ rows[j].T for i in range(len(rows)) for j in range(i, len(rows))}
    for i in range(len(rows)):
        upper[i, i] = 0.5 * (upper[i, i] + upper[i, i].T)
    return xp.concat(
        [
            xp.concat([upper[i, j] if j >= i else upper[j, i].T for j in range(len(rows))], axis=1)
            for i in range(len(rows))
        ],
        axis=0,
    )
