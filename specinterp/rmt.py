"""Random-matrix theory: Marchenko–Pastur, BBP outliers, Fuss–Catalan, layer ESDs.

Theory: :ref:`theory-rmt`.

The laws describe the eigenvalues of ``(1/n) X Xᵀ`` for an ``m × n`` matrix ``X`` with iid
mean-zero entries of variance ``σ²`` and ratio ``q = m/n`` (Marchenko & Pastur 1967); the
outlier locations are those of Baik, Ben Arous & Péché (2005) and of spiked Wigner matrices
(Péché 2006; Benaych-Georges & Nadakuditi 2011); the edge fluctuation scale is Johnstone's
(2001) Tracy–Widom scaling. Convolution spectra are in :mod:`specinterp.conv_spectra`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import _xp
from .errors import NonFiniteError, ShapeError
from .heavy_tails import PowerLawFit, power_law_fit  # noqa: F401 - rmt.power_law_fit
from .spectra import Spectrum

Array = Any

__all__ = [
    "LayerDiagnostics",
    "MarchenkoPastur",
    "bbp_outlier",
    "fuss_catalan_edge",
    "layer_diagnostics",
    "weight_esd",
]

#: Default edge margin, in Tracy–Widom units (Johnstone 2001). TW₁'s 99 % quantile is ≈ 2.02;
#: three units put a null matrix's largest eigenvalue past the margin with probability < 1 %.
TW_UNITS = 3.0


@dataclass(frozen=True)
class MarchenkoPastur:
    """The Marchenko–Pastur law with ratio ``q = m/n`` and variance ``σ²`` (:ref:`theory-rmt`).

    Density ``ρ(λ) = √((λ₊ − λ)(λ − λ₋)) / (2π σ² q λ)`` on ``[λ₋, λ₊]``,
    ``λ_± = σ²(1 ± √q)²``, plus an atom of mass ``1 − 1/q`` at 0 when ``q > 1``.

    Parameters
    ----------
    ratio : float
        ``q = m / n > 0`` (rows over columns of ``X``; eigenvalues of ``X Xᵀ / n``).
    sigma2 : float
        Entry variance ``σ² > 0``.

    """

    ratio: float
    sigma2: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ratio) and self.ratio > 0):
            raise ValueError(f"ratio q = m/n must be a positive number; got {self.ratio}")
        if not (math.isfinite(self.sigma2) and self.sigma2 > 0):
            raise ValueError(f"sigma2 must be a positive number; got {self.sigma2}")

    # ------------------------------------------------------------------ closed forms
    @property
    def edges(self) -> tuple[float, float]:
        """Bulk edges ``(λ₋, λ₊) = σ² (1 ∓ √q)²``."""
        r = math.sqrt(self.ratio)
        return self.sigma2 * (1 - r) ** 2, self.sigma2 * (1 + r) ** 2

    @property
    def singular_value_edges(self) -> tuple[float, float]:
        """Edges ``σ |1 ∓ √q|`` of the singular values of ``X / √n``."""
        lo, hi = self.edges
        return math.sqrt(lo), math.sqrt(hi)

    @property
    def atom(self) -> float:
        """Mass ``max(0, 1 − 1/q)`` of the point mass at zero."""
        return max(0.0, 1.0 - 1.0 / self.ratio)

    @property
    def mean(self) -> float:
        """Mean eigenvalue ``σ²`` (so ``tr(XXᵀ/n)/m → σ²``)."""
        return self.sigma2

    def pdf(self, x: Array) -> Array:
        """Density of the continuous part at ``x`` (it integrates to ``1 − atom``)."""
        xp = _points(x)
        lo, hi = self.edges
        inside = (x > lo) & (x < hi) & (x > 0)
        xs = xp.where(inside, x, xp.full_like(x, 0.5 * (lo + hi)))
        dens = xp.sqrt((hi - xs) * (xs - lo)) / (2 * math.pi * self.sigma2 * self.ratio * xs)
        return xp.where(inside, dens, xp.zeros_like(x))

    def _antiderivative(self, x: Array, xp: Any) -> Array:
        """``∫ √((b−x)(x−a)) / x dx`` on ``[a, b]`` (closed form), up to a constant."""
        a, b = self.edges
        xs = xp.clip(x, a, b)
        root = xp.sqrt(xp.clip((b - xs) * (xs - a), 0.0, None))
        t1 = 0.5 * (a + b) * xp.asin(xp.clip((2 * xs - a - b) / (b - a), -1.0, 1.0))
        if a <= 0.0:  # q = 1: the last term vanishes
            return root + t1
        t2 = math.sqrt(a * b) * xp.asin(
            xp.clip(((a + b) * xs - 2 * a * b) / ((b - a) * xs), -1.0, 1.0)
        )
        return root + t1 - t2

    def cdf(self, x: Array) -> Array:
        """Cumulative distribution function at ``x``, atom included (closed form)."""
        xp = _points(x)
        a, _ = self.edges
        scale = 2 * math.pi * self.sigma2 * self.ratio
        f_a = self._antiderivative(xp.full_like(x, a), xp)
        cont = (self._antiderivative(x, xp) - f_a) / scale
        atom = xp.where(x >= 0, xp.full_like(x, self.atom), xp.zeros_like(x))
        return xp.clip(atom + cont, 0.0, 1.0)

    def ppf(self, u: float) -> float:
        """Quantile function (inverse CDF) at ``u ∈ (0, 1)``, by bisection to machine precision."""
        if not 0.0 < u < 1.0:
            raise ValueError(f"quantile level must lie in (0, 1); got {u}")
        if u <= self.atom:
            return 0.0
        lo, hi = self.edges
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if float(self.cdf(np.asarray(mid))) < u:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 4 * np.finfo(float).eps * hi:
                break
        return 0.5 * (lo + hi)

    def edge_margin(self, m: int, tw_units: float = TW_UNITS) -> float:
        """Finite-size margin above ``λ₊``: ``tw_units`` Tracy–Widom scales (Johnstone 2001).

        The largest eigenvalue of a null ``m × n`` sample fluctuates around ``λ₊`` on the scale
        ``σ² (√n + √m)(1/√n + 1/√m)^{1/3} / n``, which is of order ``n^{−2/3}``.
        """
        n = m / self.ratio
        return (
            tw_units
            * self.sigma2
            * (math.sqrt(n) + math.sqrt(m))
            * (1 / math.sqrt(n) + 1 / math.sqrt(m)) ** (1 / 3)
            / n
        )

    # ------------------------------------------------------------------ empirical spectra
    @classmethod
    def fit(
        cls,
        eigenvalues: Array,
        ratio: float,
        *,
        method: Literal["robust", "moment"] = "robust",
    ) -> MarchenkoPastur:
        """Fit ``σ²`` to an empirical spectrum of ``X Xᵀ / n`` with known ratio ``q``.

        ``"moment"``: ``σ² = mean(λ) = tr/m`` (exact in expectation, but pulled up by spikes).
        ``"robust"`` (default): match the median of the non-atomic part to that of the law —
        a bulk fit that a few outliers barely move (the median of the MP law scales with σ²).
        """
        lam = _sorted_eigenvalues(eigenvalues)
        if method == "moment":
            sigma2 = float(np.mean(lam))
        elif method == "robust":
            unit = cls(ratio, 1.0)
            cont = 1.0 - unit.atom
            bulk = lam[round(lam.size * unit.atom) :]
            sigma2 = float(np.median(bulk)) / unit.ppf(unit.atom + 0.5 * cont)
        else:
            raise ValueError(f"method must be 'robust' or 'moment'; got {method!r}")
        if not sigma2 > 0:
            raise ValueError("the spectrum is (numerically) zero; no Marchenko–Pastur law fits it")
        return cls(ratio, sigma2)

    def ks_distance(self, eigenvalues: Array) -> float:
        """Kolmogorov–Smirnov distance ``sup_x |F_emp(x) − F(x)|`` to this law."""
        lam = _sorted_eigenvalues(eigenvalues)
        m = lam.size
        f = self.cdf(lam)
        f_left = f - np.where(lam == 0, self.atom, 0.0)
        i = np.arange(1, m + 1)
        return float(max(np.max(i / m - f), np.max(f_left - (i - 1) / m)))

    def spikes(
        self, eigenvalues: Array, *, margin: float | None = None, tw_units: float = TW_UNITS
    ) -> np.ndarray:
        """Eigenvalues above ``λ₊ + margin``, in descending order (NumPy array).

        ``margin`` defaults to :meth:`edge_margin` with ``m`` the number of eigenvalues given,
        i.e. ``tw_units`` Tracy–Widom scales of order ``n^{−2/3}``.
        """
        lam = _sorted_eigenvalues(eigenvalues)
        if margin is None:
            margin = self.edge_margin(lam.size, tw_units)
        return lam[lam > self.edges[1] + margin][::-1].copy()


def _points(x: Array) -> Any:
    """The namespace of evaluation points ``x``, after checking they are finite real floats."""
    xp = _xp.namespace(x)
    _xp.check_real_floating(x, xp, "x")
    _xp.check_working_precision(x, xp, "x")
    _xp.check_finite(x, xp, "x")
    return xp


def _sorted_eigenvalues(eigenvalues: Array) -> np.ndarray:
    xp = _xp.namespace(eigenvalues)
    if eigenvalues.ndim != 1 or eigenvalues.shape[0] == 0:
        raise ShapeError(
            f"expected a non-empty 1-d array of eigenvalues; got shape {tuple(eigenvalues.shape)}"
        )
    _xp.check_real_floating(eigenvalues, xp, "eigenvalues")
    _xp.check_finite(eigenvalues, xp, "eigenvalues")
    lam = np.sort(_xp.to_numpy(eigenvalues).astype(np.float64))
    if lam[0] < -1e-8 * max(1.0, abs(lam[-1])):
        raise ValueError("Marchenko–Pastur eigenvalues must be non-negative (a Gram matrix's)")
    return np.clip(lam, 0.0, None)


def bbp_outlier(
    spike: float,
    ratio: float | None = None,
    *,
    model: Literal["covariance", "wigner"] = "covariance",
) -> float:
    """Limit of the top eigenvalue of a spiked model (:ref:`theory-bbp`), σ² = 1.

    ``model="covariance"``: population covariance ``I + (ℓ−1) v vᵀ`` with spike ``ℓ``, sample
    ratio ``q`` (dimension over samples). An outlier separates iff ``ℓ > 1 + √q``, at
    ``ℓ (1 + q/(ℓ − 1))``; otherwise the top eigenvalue sticks to ``(1 + √q)²``
    (Baik, Ben Arous & Péché 2005).

    ``model="wigner"``: ``W + θ v vᵀ`` with ``W`` a Wigner matrix of semicircle ``[−2, 2]``:
    ``θ + 1/θ`` for ``θ > 1``, else 2.
    """
    if model == "wigner":
        return spike + 1.0 / spike if spike > 1 else 2.0
    if model != "covariance":
        raise ValueError(f"model must be 'covariance' or 'wigner'; got {model!r}")
    if ratio is None or not ratio > 0:
        raise ValueError("the covariance model needs the ratio q = dimension / samples > 0")
    if spike > 1 + math.sqrt(ratio):
        return spike * (1 + ratio / (spike - 1))
    return (1 + math.sqrt(ratio)) ** 2


def fuss_catalan_edge(num_factors: int) -> float:
    """Upper edge ``(L+1)^{L+1} / L^L`` of the Fuss–Catalan law.

    It is the limit of the largest squared singular value of a product of ``L`` square Gaussian
    factors with entry variance ``1/n`` (``L = 1`` is Marchenko–Pastur with ``q = 1``: 4).
    """
    big_l = int(num_factors)
    if big_l < 1:
        raise ValueError(f"need at least one factor; got {num_factors}")
    return (big_l + 1) ** (big_l + 1) / big_l**big_l


def weight_esd(weight: Array) -> tuple[Array, float]:
    """Eigenvalues of ``X Xᵀ / n`` for a weight matrix, ``X`` its orientation with ``m ≤ n``.

    Returns the ``m`` eigenvalues (ascending, in the weight's namespace) and ``q = m / n ≤ 1``;
    for iid entries of variance ``σ²`` they follow :class:`MarchenkoPastur` ``(q, σ²)``.
    """
    lam, q, _ = _esd(weight)
    return lam, q


def _esd(weight: Array) -> tuple[Array, float, Spectrum]:
    """:func:`weight_esd` and the :class:`Spectrum` it was read from (one SVD for both)."""
    xp = _xp.check_matrix(weight, "weight")
    if weight.ndim != 2:
        raise ShapeError(f"weight must be a single 2-d matrix; got shape {tuple(weight.shape)}")
    if getattr(weight, "requires_grad", False):  # a torch Parameter: the results are host numbers
        weight = weight.detach()
    x = weight if weight.shape[0] <= weight.shape[1] else weight.T
    m, n = int(x.shape[0]), int(x.shape[1])
    # λ_i = (σ_i/√n)² from a prescaled SVD: more accurate than eigvalsh(X Xᵀ/n), which squares
    # the condition number, and no intermediate X Xᵀ that could overflow
    spec = Spectrum.from_matrix(x)  # the singular values of W and Wᵀ are the same
    s = spec.values / math.sqrt(n)
    with warnings.catch_warnings():  # NumPy warns on the overflow reported below
        warnings.simplefilter("ignore", RuntimeWarning)
        lam = xp.flip(s * s, axis=-1)
    if _xp.all_finite(lam, xp) is False:
        raise NonFiniteError(
            "the eigenvalues σ²/n of this weight matrix overflow its dtype; scale the weights "
            "down first (the Marchenko–Pastur fit is equivariant: σ² scales with them)"
        )
    return lam, m / n, spec


@dataclass(frozen=True)
class LayerDiagnostics:
    """Spectral diagnostics of one weight matrix against Marchenko–Pastur (:ref:`theory-rmt`)."""

    shape: tuple[int, int]
    law: MarchenkoPastur
    ks_distance: float
    spikes: np.ndarray
    top_eigenvalue: float
    stable_rank: float
    entropy: float
    normalized_entropy: float
    #: the ESD itself: eigenvalues of ``X Xᵀ / n``, ascending (host NumPy)
    eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def num_spikes(self) -> int:
        """Number of eigenvalues above the MP edge plus its finite-size margin."""
        return int(self.spikes.size)


def layer_diagnostics(
    weight: Array, *, method: Literal["robust", "moment"] = "robust"
) -> LayerDiagnostics:
    """ESD of ``weight`` fitted to Marchenko–Pastur, its spikes, stable rank and entropy."""
    lam, q, spec = _esd(weight)
    return diagnose(lam, q, spec, (int(weight.shape[0]), int(weight.shape[1])), method=method)


def diagnose(
    lam: Array,
    q: float,
    spec: Spectrum,
    shape: tuple[int, int],
    *,
    method: Literal["robust", "moment"] = "robust",
    block_rows: int | None = None,
    tw_units: float = TW_UNITS,
) -> LayerDiagnostics:
    """:class:`LayerDiagnostics` from an ESD ``lam`` (ratio ``q``) and the operator's spectrum.

    The laws are fitted to ``lam``; stable rank and entropy are those of ``spec`` — the same
    operator for a weight matrix, and for a convolution the whole operator while ``lam`` holds
    one copy of each conjugate pair of Fourier blocks (:ref:`theory-conv`). ``block_rows`` is
    the size ``m`` of the matrices whose pooled eigenvalues ``lam`` are (default: all of
    ``lam``, one matrix): the spike margin is ``tw_units`` Tracy–Widom scales of that size.
    """
    law = MarchenkoPastur.fit(lam, q, method=method)
    m = int(lam.shape[-1]) if block_rows is None else int(block_rows)
    return LayerDiagnostics(
        shape=shape,
        law=law,
        ks_distance=law.ks_distance(lam),
        spikes=law.spikes(lam, margin=law.edge_margin(m, tw_units)),
        top_eigenvalue=float(_xp.to_numpy(lam)[-1]),
        stable_rank=float(spec.stable_rank()),
        entropy=float(spec.entropy()),
        normalized_entropy=float(spec.entropy(normalized=True)) if spec.r >= 2 else 0.0,
        eigenvalues=np.asarray(_xp.to_numpy(lam), dtype=np.float64),
    )


def __getattr__(name: str) -> Any:
    """``model_layers`` and ``conv2d_singular_values`` (modules that build on this one)."""
    if name == "model_layers":
        from .model_spectra import model_layers

        return model_layers
    if name == "conv2d_singular_values":
        from .conv_spectra import conv2d_singular_values

        return conv2d_singular_values
    raise AttributeError(f"module 'specinterp.rmt' has no attribute {name!r}")
