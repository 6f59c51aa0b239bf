"""Public testing kit: Hypothesis strategies and matrix builders for property tests.

Users property-test their own architectures with these against the framework's bounds; the
library's own test-suite uses the same strategies. The strategies of
:mod:`specinterp.testing.strategies` are also importable from here
(``from specinterp.testing import spectral_matrices``); they need the ``testing`` extra
(Hypothesis), imported on first use. :mod:`specinterp.testing.matrices` is plain NumPy.
"""

from typing import Any

from .assertions import assert_bounds_hold
from .matrices import (
    haar_orthogonal,
    matrix_with_spectrum,
    operator_with_spectrum,
    symmetric_with_eigenvalues,
)

#: the strategies of :mod:`specinterp.testing.strategies`, importable from here too
STRATEGIES = (
    "NetworkCase",
    "SpectralCase",
    "arraynet_mlps",
    "jax_mlps",
    "singular_value_sets",
    "spectral_matrices",
    "symmetric_matrices",
    "torch_cnns",
    "torch_mlps",
)

__all__ = [
    *STRATEGIES,
    "assert_bounds_hold",
    "haar_orthogonal",
    "matrix_with_spectrum",
    "operator_with_spectrum",
    "symmetric_with_eigenvalues",
]


def __getattr__(name: str) -> Any:
    """The strategies, imported from :mod:`specinterp.testing.strategies` on first use."""
    if name in STRATEGIES:
        try:
            from . import strategies
        except ImportError as err:  # pragma: no cover - Hypothesis is a test dependency
            raise ImportError(
                f"specinterp.testing.{name} needs Hypothesis: pip install 'specinterp[testing]'"
            ) from err
        return getattr(strategies, name)
    raise AttributeError(f"module 'specinterp.testing' has no attribute {name!r}")
