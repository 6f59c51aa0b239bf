"""Spectral statistics of matrices (:ref:`theory-spectra`).

One object, :class:`Spectrum`, holds the singular values (or the eigenvalues of a symmetric
matrix) of a batch of matrices; every statistic is a method of it, and the public functions
(:func:`spectral_entropy`, :func:`effective_rank`, ...) are thin wrappers that build it from a
matrix. All statistics depend on singular values / eigenvalues only — never on singular
vectors — so they are differentiable in PyTorch and JAX wherever the values are distinct.

Definitions follow the framework of Katende, "A Unified Matrix-Spectral Framework for
Stability and Interpretability in Deep Learning", arXiv:2602.01136 (2026); where the paper's
exact formula was not available they are this library's own (:ref:`theory-spectra`).
"""

from __future__ import annotations

from typing import Any

from .spectrum import Convention, OnZero, Spectrum
from .spectrum import as_spectrum as _spectrum

Array = Any

__all__ = [
    "Spectrum",
    "attribution_condition_number",
    "condition_number",
    "effective_rank",
    "singular_values",
    "spectral_entropy",
    "stable_rank",
    "typical_gain",
]


# --------------------------------------------------------------------- functional API
def singular_values(a: Array) -> Array:
    """Singular values ``(..., min(m, n))`` of ``a`` with shape ``(..., m, n)``, descending.

    Same namespace, dtype and device as ``a``; validated (finite, real floating, non-empty).
    """
    return Spectrum.from_matrix(a).values


def spectral_entropy(
    a: Array | Spectrum,
    *,
    convention: Convention | None = None,
    normalized: bool = False,
    hermitian: bool = False,
    on_zero: OnZero = "raise",
) -> Array:
    """Spectral entropy ``H(A) = −Σ p_i log p_i`` of each matrix in ``a`` (:ref:`theory-spectra`).

    Parameters
    ----------
    a : array ``(..., m, n)`` or Spectrum
        The matrices, or their precomputed spectrum.
    convention : {"energy", "roy-vetterli", "trace"}, optional
        Default ``"energy"`` (``p_i = σ_i²/‖A‖_F²``), or ``"trace"`` (``p_i = |λ_i|/Σ|λ_j|``)
        when ``hermitian=True``.
    normalized : bool
        Return ``H / log r`` in ``[0, 1]``.
    hermitian : bool
        ``a`` is symmetric: use ``eigvalsh`` (PSD: NTK, GGN; indefinite: Hessian).
    on_zero : {"raise", "nan"}
        A zero matrix raises :class:`~specinterp.errors.ZeroSpectrumError`, or gives NaN.

    Returns
    -------
    array ``(...)`` in ``a``'s namespace, dtype and device; in ``[0, log rank A]``.

    """
    return _spectrum(a, hermitian).entropy(convention, normalized=normalized, on_zero=on_zero)


def effective_rank(
    a: Array | Spectrum,
    *,
    convention: Convention | None = None,
    hermitian: bool = False,
    on_zero: OnZero = "raise",
) -> Array:
    """Effective rank ``erank(A) = exp H(A)`` in ``[1, rank A]`` (Roy & Vetterli 2007).

    Mathematics §1.
    """
    return _spectrum(a, hermitian).effective_rank(convention, on_zero=on_zero)


def stable_rank(a: Array | Spectrum, *, on_zero: OnZero = "raise") -> Array:
    """Stable rank ``srank(A) = ‖A‖_F² / σ_1²`` in ``[1, rank A]``.

    Mathematics §1. A zero matrix has none (``0/0``): ``ZeroSpectrumError``, or NaN for it with
    ``on_zero="nan"``.
    """
    return _spectrum(a).stable_rank(on_zero=on_zero)


def condition_number(
    a: Array | Spectrum, *, rtol: float | None = None, k: int | None = None
) -> Array:
    """Condition number ``κ = σ_1/σ_r`` (``+∞`` if singular), or ``κ_k = σ_1/σ_k``.

    Definition: :ref:`theory-spectra`.

    ``rtol`` defaults to ``max(m, n) · eps(dtype)``: ``σ_r ≤ rtol·σ_1`` counts as singular.
    """
    return _spectrum(a).condition_number(rtol=rtol, k=k)


def typical_gain(a: Array | Spectrum) -> Array:
    """Typical gain ``τ(A) = ‖A‖_F / √n`` (``n`` = columns) in ``[0, σ_1]``.

    Range: :ref:`theory-ranges`; meaning: :ref:`theory-t1`.
    """
    return _spectrum(a).typical_gain()


def attribution_condition_number(a: Array | Spectrum, *, on_zero: OnZero = "raise") -> Array:
    """Attribution condition number ``κ_attr = σ_1 √r / ‖A‖_F`` in ``[1, √r]``.

    Mathematics §1, L2.
    """
    return _spectrum(a).attribution_condition_number(on_zero=on_zero)
