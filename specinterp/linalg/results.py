"""Frozen result objects of the matrix-free algorithms (:ref:`theory-algorithms`).

Every result carries the number of operator applications it cost (``num_matvecs``, counting
each column of a block product and each adjoint product as one), and the spectral results
carry per-value residual norms that bound the distance to a true eigen/singular value (T9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Array = Any

__all__ = ["Density", "EigResult", "SVDResult", "TraceResult"]


@dataclass(frozen=True, eq=False)
class EigResult:
    """Eigenpairs of a symmetric operator.

    Attributes
    ----------
    values : array ``(k,)``
        Ritz values, in the order asked for (``which``).
    vectors : array ``(n, k)`` or None
        Ritz vectors (``return_vectors=True``).
    residuals : array ``(k,)``
        ``‖A x_i − θ_i x_i‖``: an eigenvalue of ``A`` lies in ``[θ_i − r_i, θ_i + r_i]`` (T9).
    converged : bool
        Whether every residual met the tolerance.
    num_matvecs : int
    verified : bool
        Whether the missed-eigenvalue check ran and found nothing more (or the basis spanned
        the whole space). A single-vector Krylov method sees one copy of a repeated
        eigenvalue; where this is False, multiplicities may have been missed.

    """

    values: Array
    vectors: Array | None
    residuals: Array
    converged: bool
    num_matvecs: int
    verified: bool = False


@dataclass(frozen=True, eq=False)
class SVDResult:
    """Top singular triplets of a rectangular operator.

    ``residuals[i] = ‖[A v_i − σ_i u_i; Aᵀ u_i − σ_i v_i]‖``: a singular value of ``A`` lies
    within it of ``values[i]``. ``verified`` as in :class:`EigResult`.
    """

    values: Array
    left: Array | None
    right: Array | None
    residuals: Array
    converged: bool
    num_matvecs: int
    verified: bool = False


@dataclass(frozen=True, eq=False)
class TraceResult:
    """A stochastic trace estimate with its standard error (over independent probe terms)."""

    estimate: float
    stderr: float
    num_matvecs: int


@dataclass(frozen=True, eq=False)
class Density:
    """Spectral density by stochastic Lanczos quadrature.

    ``nodes`` / ``weights`` (NumPy, shape ``(num_probes, num_steps)``) are the Gauss quadrature
    rules of each probe; weights of a probe sum to 1. ``density`` is the Gaussian-smoothed
    density on ``grid``, normalised to integrate to 1 (multiply by ``n`` for an eigenvalue
    count density).
    """

    nodes: Any
    weights: Any
    grid: Any
    density: Any
    num_matvecs: int
