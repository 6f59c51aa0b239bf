"""Krylov orthogonalisation on JAX as one compiled program over a fixed-shape basis buffer.

The pass of :func:`~specinterp.linalg._orth.project_out`, compiled. JAX compiles every eager
operation once per input shape. A Krylov basis that grows by a column each step would give
every operation of every step a new shape — hundreds of compilations per run, which dominated
Lanczos and SLQ on JAX models. Here the basis lives in a ``(capacity, n)`` buffer whose rows
past ``size`` are masked out, so the pass — the local two-column pass, one classical
Gram–Schmidt pass and the DGKS-conditional second one — is one program per buffer shape
(blocks of 16 rows), reused by every step and every later run of that shape.
"""

from __future__ import annotations

import functools
from typing import Any

Array = Any


@functools.cache
def _kernel() -> Any:
    import jax
    import jax.numpy as jnp

    def project(rows: Array, size: Array, w: Array, eta: float) -> tuple[Array, Array]:
        live = jnp.arange(rows.shape[0]) < size
        coef = jnp.zeros(rows.shape[0], dtype=w.dtype)
        if rows.shape[0] >= 2:  # static: the local pass against the two newest rows
            start = jnp.maximum(size - 2, 0)
            tail = jax.lax.dynamic_slice_in_dim(rows, start, 2, axis=0)
            c = jnp.where(size > 2, tail @ w, 0.0)
            w = w - c @ tail
            coef = jax.lax.dynamic_update_slice_in_dim(coef, c, start, axis=0)
        before = jnp.linalg.norm(w)

        def full_pass(w: Array) -> tuple[Array, Array]:
            c = jnp.where(live, rows @ w, 0.0)
            return w - c @ rows, c

        w, c = full_pass(w)
        after = jnp.linalg.norm(w)

        def again(args: tuple[Array, Array]) -> tuple[Array, Array]:
            w2, c2 = full_pass(args[0])
            return w2, args[1] + c2

        w, c = jax.lax.cond(after > eta * before, lambda a: a, again, (w, c))
        return w, coef + c

    return jax.jit(project, static_argnums=3)


def project_rows(rows: Array, size: int, w: Array, eta: float) -> tuple[Array, Array]:
    """``w`` without its components along the first ``size`` rows of ``rows``, and Vᵀ w.

    The coefficients have length ``rows.shape[0]`` and are zero past ``size``.
    """
    import jax.numpy as jnp

    return _kernel()(rows, jnp.asarray(size, dtype=jnp.int32), w, float(eta))
