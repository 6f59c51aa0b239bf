"""Heavy-tailed fits of empirical spectral densities (:ref:`theory-power-law`).

:func:`power_law_fit` fits a continuous power law ``p(x) ∝ x^{−α}`` on ``[x_min, ∞)`` to the
upper tail of a sample (the eigenvalues of ``WᵀW/n`` of a layer, say) as Clauset, Shalizi &
Newman (2009) prescribe: the maximum-likelihood ``α`` for every candidate ``x_min``, and the
``x_min`` whose fit is closest to the data in Kolmogorov–Smirnov distance. It reports a
bootstrap confidence interval for ``α`` and says so, instead of returning a number, when the
tail is too short to fit. With ``x_max`` the law is truncated there (the data above it
discarded), and a semi-parametric bootstrap gives the goodness-of-fit p-value of the fitted law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _xp
from .errors import ShapeError
from .tail_laws import ALTERNATIVES, NESTED, LikelihoodRatio, truncated_exponential_rate
from .tail_laws import compare as compare_law

Array = Any

__all__ = ["LikelihoodRatio", "PowerLawFit", "power_law_fit"]

#: the fewest tail points a power law is fitted to (Clauset et al. use about 50 for a
#: reliable fit; below 10 the MLE's bias (α − 1)/n and its spread dominate)
MIN_TAIL = 10


@dataclass(frozen=True)
class PowerLawFit:
    """A continuous power law ``p(x) ∝ x^{−α}`` on ``[x_min, x_max]`` (``x_max = ∞`` by default).

    Attributes
    ----------
    alpha : float
        Maximum-likelihood exponent over the tail: ``1 + n / Σ log(x_i/x_min)`` without
        truncation (NaN when the status is not ``"ok"``).
    x_min : float
        Lower end of the tail: the candidate with the smallest KS distance.
    num_tail : int
        Sample points in ``[x_min, x_max]``.
    ks_distance : float
        ``sup_x |F_tail(x) − F_fit(x)|`` over the tail (both sides of every jump).
    alpha_stderr : float
        Asymptotic standard error ``(α − 1)/√n`` (of the untruncated law).
    alpha_ci : tuple of float
        Bootstrap percentile interval for ``α`` at ``confidence`` (the whole procedure —
        ``x_min`` included — refitted on each resample); ``(nan, nan)`` without bootstrap.
    confidence : float
    status : str
        ``"ok"``, or ``"tail too short"`` when fewer than ``min_tail`` points are available.
    comparisons : dict of str to LikelihoodRatio
        The likelihood-ratio tests against the alternatives asked for.
    gof_p_value : float
        Fraction of synthetic data sets, drawn from the fitted law above ``x_min`` and from the
        data below it and refitted the same way, whose KS distance is at least the observed one
        (NaN when not computed). Below 0.1 the power law is ruled out (Clauset et al. 2009).
        The test is conservative when the law holds below the chosen ``x_min`` too: the
        synthetic sets join the data's body to the fitted tail with a kink there, which the
        refit sees, so null p-values lean high.
    x_max : float
        Upper truncation (``inf``: none).

    """

    alpha: float
    x_min: float
    num_tail: int
    ks_distance: float
    alpha_stderr: float
    alpha_ci: tuple[float, float]
    confidence: float
    status: str
    comparisons: dict[str, LikelihoodRatio] = field(default_factory=dict)
    gof_p_value: float = math.nan
    x_max: float = math.inf

    @property
    def supported(self) -> bool:
        """Whether the fit stands.

        The goodness-of-fit p-value (when computed) is at least 0.1 and no
        non-nested alternative is significantly better (R < 0, p < 0.1). A significant
        cutoff (:attr:`cutoff`) does not void it: the law is then a power law with a cutoff.
        """
        return (
            self.status == "ok"
            and not self.gof_p_value < 0.1
            and not any(
                c.ratio < 0 and c.p_value < 0.1 and not c.nested for c in self.comparisons.values()
            )
        )

    @property
    def cutoff(self) -> bool:
        """Whether an exponential cutoff ``e^{−λx}`` significantly improves the fit (p < 0.1)."""
        c = self.comparisons.get("truncated_power_law")
        return c is not None and c.p_value < 0.1

    def weighted_alpha(self, lambda_max: float) -> float:
        """``α̂ = α · log₁₀ λ_max`` (Martin & Mahoney 2021), the exponent weighted by scale."""
        return self.alpha * math.log10(lambda_max)


def _fits(
    x: np.ndarray, min_tail: int, x_max: float = math.inf
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MLE ``α`` and KS distance ``D`` of every candidate ``x_min = x_(i)`` of a sorted ``x``.

    Candidates are the first index of each distinct value leaving at least ``min_tail`` points
    above (all of ``x`` lies at or below ``x_max``). ``D`` is evaluated for blocks of candidates
    at once on the matrix of their tails (``O(n²/2)`` work, ``O(block · n)`` memory).
    """
    n = x.size
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]  # Σ_{j ≥ i} log x_j
    first = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    cand = first[n - first >= min_tail]
    if math.isfinite(x_max):
        cand = cand[x[cand] < x_max]
    tails = n - cand
    mean = (suffix[cand] - tails * logs[cand]) / tails  # mean of log(x_i / x_min)
    width = math.log(x_max) - logs[cand] if math.isfinite(x_max) else np.full(cand.size, np.inf)
    beta = truncated_exponential_rate(mean, width)  # α − 1: log(x/x_min) is exponential
    ok = np.isfinite(beta) & (beta > 0)  # a tail of equal values has no exponent
    cand, tails, beta, width = cand[ok], tails[ok], beta[ok], width[ok]
    alpha = 1.0 + beta
    # mass of [x_min, x_max] under the untruncated law: F is divided by it
    mass = -np.expm1(-beta * width)
    ks = np.empty(cand.size)
    block = 64  # candidates per block: the block's columns start at its first candidate
    for s0 in range(0, cand.size, block):
        sl = slice(s0, s0 + block)
        i, b, m, z = cand[sl, None], beta[sl, None], tails[sl, None], mass[sl, None]
        j0 = int(cand[s0])
        j = np.arange(j0, n)[None, :]
        rank = (j - i).astype(np.float64)  # 0-based position in the tail (negative: outside)
        # F(x) = (1 − (x/x_min)^{1−α}) / mass; the empirical CDF jumps from rank/m to (rank+1)/m
        model = logs[None, j0:] - logs[i[:, 0]][:, None]
        model *= -b
        np.expm1(model, out=model)
        model /= -z
        rank /= m
        gap = np.maximum(rank + 1.0 / m - model, model - rank)
        gap[j < i] = -np.inf
        ks[sl] = np.max(gap, axis=1)
    return cand, alpha, ks


def _best(x: np.ndarray, min_tail: int, x_max: float) -> tuple[int, float, float] | None:
    cand, alpha, ks = _fits(x, min_tail, x_max)
    if cand.size == 0:
        return None
    k = int(np.argmin(ks))
    return int(cand[k]), float(alpha[k]), float(ks[k])


def _sample_power_law(
    rng: np.random.Generator, size: int, alpha: float, x_min: float, x_max: float
) -> np.ndarray:
    """Inverse-transform samples of the power law on ``[x_min, x_max]``."""
    mass = 1.0 if math.isinf(x_max) else -math.expm1(-(alpha - 1.0) * math.log(x_max / x_min))
    u = rng.random(size) * mass
    return x_min * np.exp(-np.log1p(-u) / (alpha - 1.0))


def _gof_p_value(
    x: np.ndarray,
    i: int,
    alpha: float,
    ks: float,
    x_max: float,
    min_tail: int,
    reps: int,
    rng: np.random.Generator,
) -> float:
    """Clauset et al.'s semi-parametric goodness-of-fit bootstrap.

    Each synthetic set keeps the sample size,
    draws ``Binomial(n, n_tail/n)`` points from the fitted law and the rest from the data below
    ``x_min``, and is refitted from scratch; the p-value is the share at least as far off.
    """
    n, body = x.size, x[:i]
    worse = 0
    for _ in range(reps):
        k = int(rng.binomial(n, (n - i) / n)) if i > 0 else n
        synth = np.sort(
            np.concatenate(
                [_sample_power_law(rng, k, alpha, float(x[i]), x_max), rng.choice(body, n - k)]
                if n - k > 0
                else [_sample_power_law(rng, k, alpha, float(x[i]), x_max)]
            )
        )
        fit = _best(synth, min_tail, x_max)
        worse += fit is None or fit[2] >= ks
    return worse / reps


def power_law_fit(
    values: Array,
    *,
    x_max: float | None = None,
    min_tail: int = MIN_TAIL,
    num_bootstrap: int = 200,
    num_gof: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    compare: tuple[str, ...] = ("exponential", "lognormal", "truncated_power_law"),
) -> PowerLawFit:
    """Fit a continuous power law to the upper tail of ``values`` (Clauset et al. 2009).

    For every candidate ``x_min`` (each distinct sample value leaving at least ``min_tail``
    points above it) the exponent is the maximum-likelihood ``α̂`` over the ``n`` points in
    ``[x_min, x_max]`` — ``1 + n / Σ log(x_i/x_min)`` without truncation, the root of the
    truncated score equation with it; the chosen ``x_min`` minimises the Kolmogorov–Smirnov
    distance between the tail's empirical distribution and the fitted law
    (:ref:`theory-power-law`).

    Parameters
    ----------
    values : array
        A 1-d sample (any namespace); non-positive values are never in a tail and are ignored.
    x_max : float, optional
        Truncate the law at ``x_max`` (normalised on ``[x_min, x_max]``) and discard the values
        above it. Default: no truncation — fixing ``x_max`` at the largest sample value biases
        ``α`` low, so it is not done behind the user's back.
    min_tail : int
        Fewest points in the tail.
    num_bootstrap : int
        Resamples for the confidence interval of ``α`` (0: none).
    num_gof : int
        Synthetic data sets for the goodness-of-fit p-value (0: none; Clauset et al. use
        ``≈ 2500`` for a p-value good to ``±0.01``; ``100`` resolves the 0.1 threshold to
        about ``±0.03``).
    confidence : float
        Level of the interval.
    seed : int
        Seeds the resampling.
    compare : tuple of str
        Alternatives tested against the power law on the same tail (:class:`LikelihoodRatio`,
        scipy needed for all but the exponential): ``"exponential"`` and ``"lognormal"`` by
        Vuong's test, ``"truncated_power_law"`` (power law with exponential cutoff) by the
        nested ``χ²₁`` test. :attr:`PowerLawFit.supported` is False when the exponential or
        the log-normal is significantly better — as for the Marchenko–Pastur spectrum of a
        Gaussian matrix, which has no power-law tail; :attr:`PowerLawFit.cutoff` says whether
        the cutoff is significant.

    Returns
    -------
    PowerLawFit
        With ``status="tail too short"`` (and NaN ``alpha``) when fewer than ``min_tail``
        positive values are given.

    """
    xp = _xp.namespace(values)
    if values.ndim != 1:
        raise ShapeError(f"values must be a 1-d sample; got shape {tuple(values.shape)}")
    _xp.check_real_floating(values, xp, "values")
    _xp.check_finite(values, xp, "values")
    if min_tail < 2:
        raise ValueError(f"min_tail must be at least 2; got {min_tail}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    if num_bootstrap < 0 or num_gof < 0:
        raise ValueError("num_bootstrap and num_gof count resamples: give 0 or more")
    unknown = set(compare) - set(ALTERNATIVES) - set(NESTED)
    if unknown:
        raise ValueError(f"compare takes {sorted([*ALTERNATIVES, *NESTED])}; got {sorted(unknown)}")
    top = math.inf if x_max is None else float(x_max)
    if not top > 0:
        raise ValueError(f"x_max must be positive (or None for no truncation); got {x_max}")
    x = np.sort(_xp.to_numpy(values).astype(np.float64))
    x = x[(x > 0) & (x <= top)]
    best = _best(x, min_tail, top)
    if best is None:
        nan = math.nan
        return PowerLawFit(
            nan, nan, int(x.size), nan, nan, (nan, nan), confidence, "tail too short", x_max=top
        )
    i, alpha, ks = best
    n_tail = x.size - i
    rng = _xp.host_generator(seed)
    ci = (math.nan, math.nan)
    if num_bootstrap > 0:
        boot = []
        for _ in range(num_bootstrap):
            fit = _best(np.sort(rng.choice(x, size=x.size, replace=True)), min_tail, top)
            if fit is not None:
                boot.append(fit[1])
        if boot:
            lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
            ci = (float(lo), float(hi))
    gof = math.nan
    if num_gof > 0:
        gof = _gof_p_value(x, i, alpha, ks, top, min_tail, num_gof, rng)
    tail, x0 = x[i:], float(x[i])
    return PowerLawFit(
        comparisons={name: compare_law(name, tail, alpha, x0, top) for name in compare},
        alpha=alpha,
        x_min=x0,
        num_tail=int(n_tail),
        ks_distance=ks,
        alpha_stderr=(alpha - 1.0) / math.sqrt(n_tail),
        alpha_ci=ci,
        confidence=confidence,
        status="ok",
        gof_p_value=gof,
        x_max=top,
    )
