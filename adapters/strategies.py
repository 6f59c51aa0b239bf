"""Hypothesis strategies for random networks of the frameworks (PyTorch, JAX).

Framework code lives in the adapters; :mod:`specinterp.testing.strategies` (and
:mod:`specinterp.testing`) re-export these, imported on first use.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import strategies as st

__all__ = ["jax_mlps", "torch_cnns", "torch_mlps"]


@st.composite
def torch_mlps(
    draw: st.DrawFn, *, max_depth: int = 3, max_width: int = 8, max_batch: int = 4
) -> tuple[Any, Any]:
    """A random float64 ``torch.nn.Sequential`` MLP in eval mode and an input batch."""
    import torch

    depth = draw(st.integers(1, max_depth))
    widths = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    act = draw(st.sampled_from([torch.nn.Tanh, torch.nn.ReLU, torch.nn.Softplus, torch.nn.Sigmoid]))
    seed = draw(st.integers(0, 2**31 - 1))
    torch.manual_seed(seed)
    layers: list[Any] = []
    for i in range(depth):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < depth - 1:
            layers.append(act())
    net = torch.nn.Sequential(*layers).double().eval()
    x = torch.randn(draw(st.integers(1, max_batch)), widths[0], dtype=torch.float64)
    return net, x


@st.composite
def torch_cnns(draw: st.DrawFn, *, max_batch: int = 3) -> tuple[Any, Any]:
    """A random float64 torch CNN (conv → activation → conv → flatten → linear) and inputs."""
    import torch

    c_in = draw(st.integers(1, 3))
    c_mid = draw(st.integers(1, 4))
    size = draw(st.integers(4, 7))
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2))
    pad = draw(st.integers(0, 1))
    act = draw(st.sampled_from([torch.nn.Tanh, torch.nn.ReLU, torch.nn.Softplus]))
    torch.manual_seed(draw(st.integers(0, 2**31 - 1)))
    conv = torch.nn.Conv2d(c_in, c_mid, k, stride=stride, padding=pad)
    out = (size + 2 * pad - k) // stride + 1
    net = torch.nn.Sequential(
        conv, act(), torch.nn.Flatten(), torch.nn.Linear(c_mid * out * out, draw(st.integers(1, 3)))
    )
    net = net.double().eval()
    x = torch.randn(draw(st.integers(1, max_batch)), c_in, size, size, dtype=torch.float64)
    return net, x


@st.composite
def jax_mlps(
    draw: st.DrawFn, *, max_depth: int = 3, max_width: int = 8, max_batch: int = 4
) -> tuple[Any, Any, Any]:
    """A random JAX MLP as ``(apply_fn, params, x)`` (float64 if x64 is enabled)."""
    import jax
    import jax.numpy as jnp

    depth = draw(st.integers(1, max_depth))
    widths = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    act = draw(st.sampled_from([jnp.tanh, jax.nn.relu, jax.nn.softplus, jax.nn.sigmoid]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    params = [
        (
            jnp.asarray(rng.standard_normal((a, b)) / np.sqrt(a)),
            jnp.asarray(0.1 * rng.standard_normal(b)),
        )
        for a, b in itertools.pairwise(widths)
    ]

    def apply_fn(ps: Any, x: Any) -> Any:
        for i, (w, b) in enumerate(ps):
            x = x @ w + b
            if i < len(ps) - 1:
                x = act(x)
        return x

    x = jnp.asarray(rng.standard_normal((draw(st.integers(1, max_batch)), widths[0])))
    return apply_fn, params, x
