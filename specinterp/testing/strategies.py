"""Hypothesis strategies for matrices with prescribed spectra.

Examples
--------
>>> from hypothesis import given
>>> from specinterp.testing.strategies import spectral_matrices
>>> @given(spectral_matrices())
... def test_stable_rank_at_most_rank(case):
...     ...

"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from . import STRATEGIES
from .matrices import matrix_with_spectrum, symmetric_with_eigenvalues

__all__ = list(STRATEGIES)  # the names, listed once in the package (re-exported there)


@dataclass(frozen=True)
class SpectralCase:
    """A matrix and the exact spectrum it was built from."""

    matrix: np.ndarray
    values: np.ndarray  # singular values (descending) or eigenvalues (any order)


@st.composite
def singular_value_sets(
    draw: st.DrawFn,
    r: int,
    *,
    min_value: float = 0.0,
    max_value: float = 1e3,
    allow_zero: bool = True,
    min_nonzero: int = 1,
) -> np.ndarray:
    """``r`` non-negative singular values in descending order, at least ``min_nonzero`` > 0.

    Values are drawn on a log scale (up to six decades) with optional exact zeros and ties, to
    reach rank-deficient, clustered and degenerate spectra.
    """
    logs = draw(st.lists(st.floats(-3.0, 3.0), min_size=r, max_size=r))
    s = np.clip(10.0 ** np.asarray(logs), max(min_value, 1e-300), max_value)
    if draw(st.booleans()):  # ties (degenerate spectrum)
        s[r // 2 :] = s[0]
    if allow_zero and r > min_nonzero:
        zeros = draw(st.integers(0, r - min_nonzero))
        s[np.argsort(s)[:zeros]] = 0.0
    return np.sort(s)[::-1].copy()


@st.composite
def spectral_matrices(
    draw: st.DrawFn,
    *,
    max_side: int = 12,
    allow_zero: bool = True,
    seed: st.SearchStrategy[int] | None = None,
) -> SpectralCase:
    """An ``m × n`` matrix ``Q diag(s) Vᵀ`` with Haar factors and a drawn spectrum ``s``."""
    m = draw(st.integers(1, max_side))
    n = draw(st.integers(1, max_side))
    s = draw(singular_value_sets(min(m, n), allow_zero=allow_zero))
    rng = np.random.default_rng(draw(seed if seed is not None else st.integers(0, 2**32 - 1)))
    return SpectralCase(matrix_with_spectrum(s, m, n, rng), s)


@st.composite
def symmetric_matrices(draw: st.DrawFn, *, max_side: int = 12, psd: bool = False) -> SpectralCase:
    """A symmetric ``n × n`` matrix with drawn eigenvalues (PSD if ``psd``, else any sign)."""
    n = draw(st.integers(1, max_side))
    mags = draw(singular_value_sets(n))
    signs = (
        np.ones(n)
        if psd
        else np.asarray(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)))
    )
    lam = mags * signs
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return SpectralCase(symmetric_with_eigenvalues(lam, rng), lam)


@dataclass(frozen=True)
class NetworkCase:
    """A random arraynet MLP with an input batch (NumPy float64)."""

    net: object
    x: np.ndarray
    seed: int


@st.composite
def arraynet_mlps(
    draw: st.DrawFn,
    *,
    activations: tuple[str, ...] = ("relu", "leaky_relu", "tanh", "sigmoid", "softplus", "gelu"),
    max_depth: int = 3,
    max_width: int = 8,
    max_batch: int = 5,
) -> NetworkCase:
    """A random MLP (depth, widths, activation, He-scaled weights, random biases) and inputs."""
    from ..adapters import arraynet as an

    kinds = {
        "relu": an.ReLU(),
        "leaky_relu": an.LeakyReLU(0.1),
        "tanh": an.Tanh(),
        "sigmoid": an.Sigmoid(),
        "softplus": an.Softplus(1.0),
        "gelu": an.GELU(),
    }
    depth = draw(st.integers(1, max_depth))
    widths = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    widths[-1] = draw(st.integers(1, 4))
    act = kinds[draw(st.sampled_from(activations))]
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    net = an.init_mlp(widths, act, seed=seed)
    net = net.with_params(
        [p + 0.1 * rng.standard_normal(p.shape) if p.ndim == 1 else p for p in net.params]
    )
    n = draw(st.integers(1, max_batch))
    return NetworkCase(net, rng.standard_normal((n, widths[0])), seed)


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
