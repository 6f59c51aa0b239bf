"""The laws a spectral tail is fitted to and tested against (:ref:`theory-power-law`).

Each law lives on ``[x_min, x_max]`` (``x_max = ∞``: no truncation) and is fitted by maximum
likelihood to the tail points; :func:`compare` pits one of them against the power law with a
likelihood-ratio test — Vuong's normalised test for the non-nested exponential and log-normal,
the classical ``χ²₁`` test for the power law with an exponential cutoff, which contains the
power law as its ``λ = 0`` case (Clauset, Shalizi & Newman 2009, App. C).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ALTERNATIVES", "NESTED", "LikelihoodRatio", "compare", "truncated_exponential_rate"]


@dataclass(frozen=True)
class LikelihoodRatio:
    """A likelihood-ratio test of the power law against an alternative on the same tail.

    ``ratio = Σ_i log(p_pl(x_i) / p_alt(x_i))`` (positive: the power law is the better fit).
    For a non-nested alternative ``p_value = erfc(|R| / √(2 n σ²))`` is Vuong's two-sided test
    of the sign of ``R`` (``σ²`` the variance of the pointwise log-ratios; Vuong 1989); for the
    nested cutoff law (``nested=True``) it is ``P(χ²₁ > 2|R|)``, small when the cutoff is real.
    """

    ratio: float
    p_value: float
    nested: bool = False


def truncated_exponential_rate(mean: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Maximum-likelihood rate ``β`` of ``β e^{−βu} / (1 − e^{−βw})`` on ``[0, w]``, elementwise.

    The score equation is ``ū = 1/β − w/(e^{βw} − 1)``; with ``y = βw`` it reads
    ``ū/w = h(y) = 1/y − 1/(e^y − 1)``, ``h`` decreasing from ``1/2`` to ``0``, solved by
    bisection (``w = ∞``: ``β = 1/ū``). Entries with ``ū ≥ w/2`` have no positive rate: NaN.
    """
    mean = np.asarray(mean, dtype=np.float64)
    width = np.broadcast_to(np.asarray(width, dtype=np.float64), mean.shape)
    out = np.full(mean.shape, np.nan)
    inf = np.isinf(width) & (mean > 0)
    out[inf] = 1.0 / mean[inf]
    fin = ~inf & (mean > 0) & (mean < width / 2)
    if np.any(fin):
        target = mean[fin] / width[fin]
        lo = np.zeros_like(target)
        hi = 1.0 / target  # h(y) < 1/y, so h(1/target) < target
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            small = mid < 1e-4  # series 1/2 − y/12 + y³/720 where 1/y − 1/expm1(y) cancels
            safe = np.where(small, 1.0, mid)
            h = np.where(small, 0.5 - mid / 12 + mid**3 / 720, 1.0 / safe - 1.0 / np.expm1(safe))
            above = h > target
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        out[fin] = 0.5 * (lo + hi) / width[fin]
    return out


def _log1mexp(a: float) -> float:
    """``log(1 − e^{−a})`` for ``a > 0``, accurate at both ends."""
    return math.log(-math.expm1(-a)) if a < math.log(2) else math.log1p(-math.exp(-a))


def power_law_log_pdf(x: np.ndarray, alpha: float, x_min: float, x_max: float) -> np.ndarray:
    """``log p(x)`` of the power law ``∝ x^{−α}`` normalised on ``[x_min, x_max]``."""
    norm = 0.0 if math.isinf(x_max) else _log1mexp((alpha - 1.0) * math.log(x_max / x_min))
    return math.log((alpha - 1.0) / x_min) - alpha * np.log(x / x_min) - norm


def _exponential(x: np.ndarray, x_min: float, x_max: float) -> np.ndarray:
    """``λ e^{−λ(x − x_min)}`` normalised on the tail's range, ``λ`` by maximum likelihood."""
    u, w = x - x_min, x_max - x_min
    lam = float(truncated_exponential_rate(np.array(np.mean(u)), np.array(w)))
    if not math.isfinite(lam):  # mean at or above the midpoint: no decaying exponential
        return np.full(x.shape, -math.log(w))  # the rate → 0 limit, the uniform density
    norm = 0.0 if math.isinf(w) else _log1mexp(lam * w)
    return math.log(lam) - lam * u - norm


def _lognormal(x: np.ndarray, x_min: float, x_max: float) -> np.ndarray:
    """A log-normal truncated to ``[x_min, x_max]``, ``(μ, σ)`` by maximum likelihood."""
    from scipy.optimize import minimize
    from scipy.special import log_ndtr

    logs, a0, b0 = np.log(x), math.log(x_min), math.log(x_max)

    def log_pdf(params: np.ndarray) -> np.ndarray:
        mu, sigma = float(params[0]), math.exp(float(params[1]))
        z = (logs - mu) / sigma
        upper = float(log_ndtr(-(a0 - mu) / sigma))  # log P(X ≥ x_min)
        if math.isfinite(b0):  # log P(x_min ≤ X ≤ x_max) = upper + log(1 − P(X > x_max)/…)
            beyond = float(log_ndtr(-(b0 - mu) / sigma)) - upper
            upper += math.log1p(-math.exp(min(beyond, -1e-300)))
        return -logs - math.log(sigma * math.sqrt(2 * math.pi)) - 0.5 * z * z - upper

    start = np.array([float(np.mean(logs)), math.log(max(float(np.std(logs)), 1e-3))])
    best = minimize(
        lambda q: -float(np.sum(log_pdf(q))),
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10},
    )
    return log_pdf(best.x)


def _log_cutoff_norm(alpha: float, c: float, log_r: float) -> float:
    """``log ∫_1^r t^{−α} e^{−c t} dt`` (``c > 0``) on the log scale ``t = e^u``."""
    from scipy.integrate import quad

    def g(u: float) -> float:
        return (1.0 - alpha) * u - c * math.exp(min(u, 700.0))  # e^{−c e^u} ≈ 0 far out

    peak = min(max(math.log((1.0 - alpha) / c), 0.0), log_r) if alpha < 1.0 else 0.0
    top = g(peak)
    pieces = [(0.0, peak), (peak, log_r)]
    total = sum(
        quad(lambda u: math.exp(g(u) - top), a, b, limit=200)[0] for a, b in pieces if b > a
    )
    return top + math.log(total)


def _cutoff(x: np.ndarray, x_min: float, x_max: float, alpha0: float) -> np.ndarray:
    """The power law with exponential cutoff ``∝ x^{−α} e^{−λx}`` by maximum likelihood."""
    from scipy.optimize import minimize

    t = x / x_min
    logt, log_r = np.log(t), math.log(x_max / x_min)

    def log_pdf(params: np.ndarray) -> np.ndarray:
        alpha, c = float(params[0]), math.exp(float(params[1]))  # c = λ x_min
        return -alpha * logt - c * t - _log_cutoff_norm(alpha, c, log_r) - math.log(x_min)

    def loss(params: np.ndarray) -> float:
        val = -float(np.sum(log_pdf(params)))
        return val if math.isfinite(val) else math.inf

    starts = [np.array([alpha0, math.log(c)]) for c in (1e-3, 1.0 / float(np.mean(t)))]
    best = min(
        (
            minimize(loss, s, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10})
            for s in starts
        ),
        key=lambda r: r.fun,
    )
    return log_pdf(best.x)


#: the non-nested alternatives (Vuong's test) and the nested one (χ²₁)
ALTERNATIVES: dict[str, Callable[..., np.ndarray]] = {
    "exponential": _exponential,
    "lognormal": _lognormal,
}
NESTED: dict[str, Callable[..., np.ndarray]] = {"truncated_power_law": _cutoff}


def compare(
    name: str, tail: np.ndarray, alpha: float, x_min: float, x_max: float
) -> LikelihoodRatio:
    """Test the fitted power law against the alternative ``name`` on the same ``tail``."""
    pl = power_law_log_pdf(tail, alpha, x_min, x_max)
    if name in NESTED:
        alt = NESTED[name](tail, x_min, x_max, alpha)
        r = float(np.sum(pl - alt))
        r = min(r, 0.0)  # the cutoff law contains the power law: its maximum is at least as high
        from scipy.stats import chi2

        return LikelihoodRatio(r, float(chi2.sf(-2.0 * r, 1)), nested=True)
    d = pl - ALTERNATIVES[name](tail, x_min, x_max)
    r, var = float(np.sum(d)), float(np.var(d))
    p = 1.0 if var == 0 else math.erfc(abs(r) / math.sqrt(2.0 * d.size * var))
    return LikelihoodRatio(r, p)
