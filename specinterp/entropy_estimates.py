"""Spectral entropy of an operator: exact from eigenvalues, or by SLQ to a stated error.

``H = −Σ p_i log p_i`` with ``p_i = |λ_i| / Σ_j |λ_j|`` (:ref:`theory-spectra`), written as
``H = log T − S / T`` with ``T = tr |A|`` and ``S = tr (|A| log |A|)``; both traces by stochastic
Lanczos quadrature (:ref:`theory-slq`) from the *same* probes.

The standard error is the spread of the per-probe entropies over ``√m`` (``m`` probes). It
is dominated by quadrature error, not by the probes' sampling variance: ``|x|`` has a kink at 0,
and an indefinite Hessian has much of its mass near 0, where each probe's Gauss rule places
its nodes differently (on a 75k-parameter ResNet the per-probe entropies spread by 0.7 nats,
ten times the sampling variance ``2‖g(A)‖_F²`` of the quadratic forms predicts).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._progress import counting
from .linalg.density import slq_rules

__all__ = ["EntropyEstimate", "entropy_from_values", "slq_entropy"]


def entropy_from_values(lam: np.ndarray) -> float:
    """``H`` of the eigenvalues ``λ`` (absolute values normalised; NaN for the zero matrix)."""
    w = np.abs(np.asarray(lam, dtype=np.float64))
    total = w.sum()
    if total == 0:
        return float("nan")
    p = w[w > 0] / total
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class EntropyEstimate:
    """An SLQ entropy: ``value``, its estimated ``stderr``, probes and products used."""

    value: float
    stderr: float
    num_probes: int
    num_matvecs: int


def _xlogx(t: np.ndarray) -> np.ndarray:
    a = np.abs(t)
    return np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)


def slq_entropy(
    op: Any,
    *,
    num_probes: int = 10,
    num_steps: int = 40,
    seed: int = 0,
    trace_abs: float | None = None,
    progress: bool = False,
    reorthogonalize: str = "full",
) -> EntropyEstimate:
    """The spectral entropy of a symmetric operator by SLQ (module docstring).

    Parameters
    ----------
    op : symmetric LinearOperator
    num_probes : int
        Rademacher probes (each ``num_steps`` Lanczos steps); ``stderr`` needs two.
    num_steps : int
        Lanczos steps per probe (the Gauss rule's size).
    seed : int
    trace_abs : float, optional
        ``tr |A|`` when known exactly (the NTK: ``Σ_i ‖G_i‖_F²``); then only ``S`` is estimated.
    progress : bool
        A progress bar (and a time estimate) for long runs.
    reorthogonalize : {"full", "partial"}
        As in :func:`specinterp.linalg.spectral_density`.

    """
    n = op.shape[0]
    probes = max(int(num_probes), 1)
    expected = probes * min(num_steps, n)
    counted, bar = counting(op, "spectral entropy (SLQ)", expected, enabled=progress)
    t_rows, s_rows, matvecs = [], [], 0
    try:
        for nodes, weights, used in itertools.islice(
            slq_rules(counted, num_steps, seed=seed, reorthogonalize=reorthogonalize), probes
        ):
            matvecs += used
            t_rows.append(n * float(np.sum(weights * np.abs(nodes))))
            s_rows.append(n * float(np.sum(weights * _xlogx(nodes))))
    finally:
        bar.close()
    t = np.asarray(t_rows) if trace_abs is None else np.full(probes, float(trace_abs))
    s = np.asarray(s_rows)
    if not np.mean(t) > 0:
        return EntropyEstimate(float("nan"), float("nan"), probes, matvecs)
    value = math.log(float(np.mean(t))) - float(np.mean(s)) / float(np.mean(t))
    per_probe = np.log(t) - s / t if np.all(t > 0) else np.full(probes, np.nan)
    stderr = float(np.std(per_probe, ddof=1) / math.sqrt(probes)) if probes > 1 else math.nan
    return EntropyEstimate(value, stderr, probes, matvecs)
