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


_FRAMEWORK_STRATEGIES = ("jax_mlps", "torch_cnns", "torch_mlps")


def __getattr__(name: str) -> Any:
    """The framework networks' strategies, from :mod:`specinterp.adapters.strategies`."""
    if name in _FRAMEWORK_STRATEGIES:
        from ..adapters import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'specinterp.testing.strategies' has no attribute {name!r}")
