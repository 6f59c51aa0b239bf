"""The 2-d convolutions of a JAX model, read from its jaxpr (for exact conv spectra).

Any JAX model — Flax linen or NNX, Equinox, a plain function — computes its convolutions with
``lax.conv_general_dilated``. Evaluating the model's jaxpr once, equation by equation, on a zero
input records each one: the kernel's value (brought to torch's ``(c_out, c_in, k_h, k_w)``
layout through the equation's dimension numbers), strides, dilations, groups and the spatial
sizes of its input and output. Convolutions inside loops (``scan``, ``while``) are not seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from specinterp.capabilities import ConvKernel

__all__ = ["jax_conv_kernels"]


def _closed_subjaxpr(eqn: Any) -> Any:
    """The inner closed jaxpr of a call-like equation whose inputs it takes one to one."""
    for value in eqn.params.values():
        if hasattr(value, "jaxpr") and hasattr(value, "consts"):
            if len(value.jaxpr.invars) == len(eqn.invars):
                return value
    return None


def _evaluate(jaxpr: Any, consts: Sequence[Any], args: Sequence[Any], seen: list[Any]) -> list:
    env: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return v.val if hasattr(v, "val") and not hasattr(v, "count") else env[v]

    for var, val in zip(jaxpr.constvars, consts, strict=True):
        env[var] = val
    for var, val in zip(jaxpr.invars, args, strict=True):
        env[var] = val
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        inner = _closed_subjaxpr(eqn)
        if inner is not None:
            outvals = _evaluate(inner.jaxpr, inner.consts, invals, seen)
        else:
            outvals = eqn.primitive.bind(*invals, **eqn.params)
            if not eqn.primitive.multiple_results:
                outvals = [outvals]
        if eqn.primitive.name == "conv_general_dilated" and invals[1].ndim == 4:
            seen.append((eqn.params, invals[0].shape, invals[1], outvals[0].shape))
        for var, val in zip(eqn.outvars, outvals, strict=True):
            env[var] = val
    return [read(v) for v in jaxpr.outvars]


def jax_conv_kernels(
    natural: Callable[[jax.Array, jax.Array], Any],
    theta: jax.Array,
    leaves: list[tuple[str, Any]],
    input_shape: Sequence[int] | None,
) -> list[ConvKernel]:
    """Every 2-d convolution of ``natural(theta, x)``, named by the parameter leaf it reads."""
    if input_shape is None:
        return []
    x = jnp.zeros((1, *input_shape), dtype=theta.dtype)
    closed = jax.make_jaxpr(natural)(theta, x)
    seen: list[Any] = []
    _evaluate(closed.jaxpr, closed.consts, [theta, x], seen)
    out = []
    for i, (params, lhs_shape, rhs, out_shape) in enumerate(seen):
        dn = params["dimension_numbers"]
        kernel = jnp.transpose(rhs, tuple(dn.rhs_spec))  # → (c_out, c_in / groups, k_h, k_w)
        raw = np.asarray(rhs)
        name = next(
            (n for n, leaf in leaves if leaf.shape == raw.shape and np.array_equal(leaf, raw)),
            f"conv{i}",
        )
        lhs_dil = tuple(int(d) for d in params["lhs_dilation"])
        rhs_dil = tuple(int(d) for d in params["rhs_dilation"])
        out.append(
            ConvKernel(
                name=name,
                kernel=kernel,
                stride=tuple(int(s) for s in params["window_strides"]),  # type: ignore[arg-type]
                input_size=(int(lhs_shape[dn.lhs_spec[2]]), int(lhs_shape[dn.lhs_spec[3]])),
                output_size=(int(out_shape[dn.out_spec[2]]), int(out_shape[dn.out_spec[3]])),
                circular=False,  # a wrap-around pad happens before the equation, unseen
                groups=int(params["feature_group_count"]) * int(params["batch_group_count"]),
                # an input dilation (transposed convolution) is not a strided convolution either
                dilation=rhs_dil if lhs_dil == (1, 1) else (0, 0),  # type: ignore[arg-type]
            )
        )
    return out
