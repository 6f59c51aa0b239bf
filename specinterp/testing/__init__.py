"""Public testing kit: Hypothesis strategies and matrix builders for property tests.

Users property-test their own architectures with these against the framework's bounds; the
library's own test-suite uses the same strategies. Needs the ``testing`` extra (Hypothesis)
for :mod:`specinterp.testing.strategies`; :mod:`specinterp.testing.matrices` is plain NumPy.
"""

from .assertions import assert_bounds_hold
from .matrices import (
    haar_orthogonal,
    matrix_with_spectrum,
    operator_with_spectrum,
    symmetric_with_eigenvalues,
)

__all__ = [
    "assert_bounds_hold",
    "haar_orthogonal",
    "matrix_with_spectrum",
    "operator_with_spectrum",
    "symmetric_with_eigenvalues",
]
