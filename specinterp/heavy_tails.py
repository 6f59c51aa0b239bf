"""Heavy-tailed fits of empirical spectral densities (:ref:`theory-power-law`).

:func:`power_law_fit` fits a continuous power law ``p(x) ∝ x^{−α}`` on ``[x_min, ∞)`` to the
upper tail of a sample (the eigenvalues of ``WᵀW/n`` of a layer, say) as Clauset, Shalizi &
Newman (2009) prescribe: the maximum-likelihood ``α`` for every candidate ``x_min``, and the
``x_min`` whose fit is closest to the data in Kolmogorov–Smirnov distance. It reports a
bootstrap confidence interval for ``α`` and says so, instead of returning a number, when the
tail is too short to fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _xp
from .errors import ShapeError

Array = Any

__all__ = ["LikelihoodRatio", "PowerLawFit", "power_law_fit"]

#: the fewest tail points a power law is fitted to (Clauset et al. use about 50 for a
#: reliable fit; below 10 the MLE's bias (α − 1)/n and its spread dominate)
MIN_TAIL = 10


@dataclass(frozen=True)
class LikelihoodRatio:
    """Vuong's test of the power law against an alternative on the same tail.

    ``ratio = Σ_i log(p_pl(x_i) / p_alt(x_i))`` (positive: the power law is the better fit) and
    the two-sided ``p_value = erfc(|R| / √(2 n σ²))`` of its normalised size, ``σ²`` the
    variance of the pointwise log-ratios (Vuong 1989; Clauset et al. 2009, App. C).
    """

    ratio: float
    p_value: float


@dataclass(frozen=True)
class PowerLawFit:
    """A continuous power law ``p(x) = ((α − 1)/x_min) (x/x_min)^{−α}`` on ``[x_min, ∞)``.

    Attributes
    ----------
    alpha : float
        Maximum-likelihood exponent ``1 + n / Σ log(x_i/x_min)`` over the tail (NaN when the
        status is not ``"ok"``).
    x_min : float
        Lower end of the tail: the candidate with the smallest KS distance.
    num_tail : int
        Sample points in ``[x_min, ∞)``.
    ks_distance : float
        ``sup_x |F_tail(x) − F_fit(x)|`` over the tail (both sides of every jump).
    alpha_stderr : float
        Asymptotic standard error ``(α − 1)/√n``.
    alpha_ci : tuple of float
        Bootstrap percentile interval for ``α`` at ``confidence`` (the whole procedure —
        ``x_min`` included — refitted on each resample); ``(nan, nan)`` without bootstrap.
    confidence : float
    status : str
        ``"ok"``, or ``"tail too short"`` when fewer than ``min_tail`` points are available.

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

    @property
    def supported(self) -> bool:
        """Whether the fit stands: no alternative is significantly better (R < 0, p < 0.1)."""
        return self.status == "ok" and not any(
            c.ratio < 0 and c.p_value < 0.1 for c in self.comparisons.values()
        )

    def weighted_alpha(self, lambda_max: float) -> float:
        """``α̂ = α · log₁₀ λ_max`` (Martin & Mahoney 2021), the exponent weighted by scale."""
        return self.alpha * math.log10(lambda_max)


def _fits(x: np.ndarray, min_tail: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MLE ``α`` and KS distance ``D`` of every candidate ``x_min = x_(i)`` of a sorted ``x``.

    Candidates are the first index of each distinct value leaving at least ``min_tail`` points
    above. ``D`` is evaluated for blocks of candidates at once on the padded matrix of their
    tails (``O(n²)`` work, ``O(block · n)`` memory).
    """
    n = x.size
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]  # Σ_{j ≥ i} log x_j
    first = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    cand = first[n - first >= min_tail]
    tails = n - cand
    denom = suffix[cand] - tails * logs[cand]
    ok = denom > 0  # a tail of equal values has no exponent
    cand, tails, denom = cand[ok], tails[ok], denom[ok]
    alpha = 1.0 + tails / denom
    ks = np.empty(cand.size)
    j = np.arange(n)
    block = max(1, 2**22 // max(n, 1))
    for s0 in range(0, cand.size, block):
        i, a, m = (
            cand[s0 : s0 + block, None],
            alpha[s0 : s0 + block, None],
            tails[s0 : s0 + block, None],
        )
        inside = j[None, :] >= i
        rank = j[None, :] - i  # 0-based position in the tail
        # F(x) = 1 − (x/x_min)^{1−α}; the empirical CDF jumps from rank/m to (rank + 1)/m
        model = 1.0 - np.exp((1.0 - a) * (logs[None, :] - logs[i[:, 0]][:, None]))
        gap = np.maximum((rank + 1) / m - model, model - rank / m)
        ks[s0 : s0 + block] = np.max(np.where(inside, gap, -np.inf), axis=1)
    return cand, alpha, ks


def _best(x: np.ndarray, min_tail: int) -> tuple[int, float, float] | None:
    cand, alpha, ks = _fits(x, min_tail)
    if cand.size == 0:
        return None
    k = int(np.argmin(ks))
    return int(cand[k]), float(alpha[k]), float(ks[k])


def _vuong(d: np.ndarray) -> LikelihoodRatio:
    r = float(np.sum(d))
    var = float(np.var(d))
    p = 1.0 if var == 0 else math.erfc(abs(r) / math.sqrt(2.0 * d.size * var))
    return LikelihoodRatio(r, p)


def _log_power_law(t: np.ndarray, alpha: float, x_min: float) -> np.ndarray:
    return math.log((alpha - 1.0) / x_min) - alpha * np.log(t / x_min)


def _compare_exponential(t: np.ndarray, alpha: float, x_min: float) -> LikelihoodRatio:
    """Against ``λ e^{−λ(x − x_min)}`` on the tail, ``λ`` by maximum likelihood."""
    lam = 1.0 / float(np.mean(t - x_min))
    log_exp = math.log(lam) - lam * (t - x_min)
    return _vuong(_log_power_law(t, alpha, x_min) - log_exp)


def _compare_lognormal(t: np.ndarray, alpha: float, x_min: float) -> LikelihoodRatio:
    """Against a log-normal truncated to ``[x_min, ∞)``, ``(μ, σ)`` by maximum likelihood."""
    try:
        from scipy.optimize import minimize
        from scipy.special import log_ndtr
    except ImportError as exc:  # pragma: no cover - scipy comes with the report extra
        raise ImportError("the log-normal comparison needs scipy: pip install scipy") from exc
    logs, lx0 = np.log(t), math.log(x_min)

    def log_pdf(params: np.ndarray) -> np.ndarray:
        mu, sigma = float(params[0]), math.exp(float(params[1]))
        z = (logs - mu) / sigma
        tail = float(log_ndtr(-(lx0 - mu) / sigma))  # log P(X ≥ x_min)
        return -logs - math.log(sigma * math.sqrt(2 * math.pi)) - 0.5 * z * z - tail

    start = np.array([float(np.mean(logs)), math.log(max(float(np.std(logs)), 1e-3))])
    best = minimize(lambda q: -float(np.sum(log_pdf(q))), start, method="Nelder-Mead")
    return _vuong(_log_power_law(t, alpha, x_min) - log_pdf(best.x))


_ALTERNATIVES = {"exponential": _compare_exponential, "lognormal": _compare_lognormal}


def power_law_fit(
    values: Array,
    *,
    min_tail: int = MIN_TAIL,
    num_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    compare: tuple[str, ...] = ("exponential", "lognormal"),
) -> PowerLawFit:
    """Fit a continuous power law to the upper tail of ``values`` (Clauset et al. 2009).

    For every candidate ``x_min`` (each distinct sample value leaving at least ``min_tail``
    points above it) the exponent is the maximum-likelihood ``α̂ = 1 + n / Σ log(x_i/x_min)``
    over the ``n`` points ``x_i ≥ x_min``; the chosen ``x_min`` minimises the Kolmogorov–Smirnov
    distance between the tail's empirical distribution and the fitted law
    (:ref:`theory-power-law`).

    Parameters
    ----------
    values : array
        A 1-d sample (any namespace); non-positive values are never in a tail and are ignored.
    min_tail : int
        Fewest points in the tail.
    num_bootstrap : int
        Resamples for the confidence interval of ``α`` (0: none).
    confidence : float
        Level of that interval.
    seed : int
        Seeds the resampling.
    compare : tuple of str
        Alternatives tested against the power law on the same tail by Vuong's likelihood
        ratio (:class:`LikelihoodRatio`): ``"exponential"`` and ``"lognormal"`` (needs scipy).
        :attr:`PowerLawFit.supported` is False when one of them is significantly better — as
        for the Marchenko–Pastur spectrum of a Gaussian matrix, which has no power-law tail.

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
    unknown = set(compare) - set(_ALTERNATIVES)
    if unknown:
        raise ValueError(f"compare takes {sorted(_ALTERNATIVES)}; got {sorted(unknown)}")
    x = np.sort(_xp.to_numpy(values).astype(np.float64))
    x = x[x > 0]
    best = _best(x, min_tail)
    if best is None:
        nan = float("nan")
        return PowerLawFit(
            nan, nan, int(x.size), nan, nan, (nan, nan), confidence, "tail too short"
        )
    i, alpha, ks = best
    n_tail = x.size - i
    ci = (float("nan"), float("nan"))
    if num_bootstrap > 0:
        rng = np.random.default_rng(seed)
        boot = []
        for _ in range(num_bootstrap):
            fit = _best(np.sort(rng.choice(x, size=x.size, replace=True)), min_tail)
            if fit is not None:
                boot.append(fit[1])
        if boot:
            lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
            ci = (float(lo), float(hi))
    tail = x[i:]
    comparisons = {name: _ALTERNATIVES[name](tail, alpha, float(x[i])) for name in compare}
    return PowerLawFit(
        comparisons=comparisons,
        alpha=alpha,
        x_min=float(x[i]),
        num_tail=int(n_tail),
        ks_distance=ks,
        alpha_stderr=(alpha - 1.0) / math.sqrt(n_tail),
        alpha_ci=ci,
        confidence=confidence,
        status="ok",
    )
