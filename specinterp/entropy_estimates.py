"""Spectral entropy of an operator: exact from eigenvalues, or by SLQ to a stated error.

``H = −Σ p_i log p_i`` with ``p_i = |λ_i| / Σ_j |λ_j|`` (:ref:`theory-spectra`), written as
``H = log T − S / T`` with ``T = tr |A|`` and ``S = tr (|A| log |A|)``; both traces by stochastic
Lanczos quadrature (:ref:`theory-slq`) from the *same* probes.

Two errors are stated. ``stderr`` is the spread of the per-probe entropies over ``√m``
(``m`` probes). It is dominated by quadrature error, not by the probes' sampling variance:
``|x|`` has a kink at 0, and an indefinite Hessian has much of its mass near 0, where each
probe's Gauss rule places its nodes differently (on a 75k-parameter ResNet the per-probe
entropies spread by 0.7 nats, ten times the sampling variance ``2‖g(A)‖_F²`` of the quadratic
forms predicts). The spread does not see the *bias* of a short rule, so ``quadrature`` is
``|H_s − H_{⌈s/2⌉}|``, the change from the rule of the first half of the steps (free: the
leading block of each ``T``) — conservative, since the error of a Gauss rule falls with its
size. ``error = (stderr² + quadrature²)^½`` is what callers report.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._progress import counted
from .linalg.density import slq_rules

__all__ = [
    "EntropyEstimate",
    "entropy_from_values",
    "entropy_of_rules",
    "estimate_from_rules",
    "slq_entropy",
]


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
    """An SLQ entropy: ``value``, its ``stderr`` and ``quadrature`` error, probes, products.

    ``trace_abs`` is the ``T = tr |A|`` it used — the one given, or the probes' mean (for a
    positive semi-definite ``A`` each probe's Gauss rule gives Hutchinson's ``zᵀAz`` exactly) —
    and ``trace_stderr`` that mean's standard error (0 when given).
    """

    value: float
    stderr: float
    num_probes: int
    num_matvecs: int
    quadrature: float = math.nan
    trace_abs: float = math.nan
    trace_stderr: float = math.nan

    @property
    def error(self) -> float:
        """``(stderr² + quadrature²)^½``: the stated error of ``value`` (nats)."""
        return math.hypot(self.stderr, self.quadrature)


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
    full_rules, half_rules, matvecs = [], [], 0
    with counted(op, "spectral entropy (SLQ)", expected, enabled=progress) as wrapped:
        for nodes, weights, used, half_nodes, half_weights in itertools.islice(
            slq_rules(
                wrapped, num_steps, seed=seed, reorthogonalize=reorthogonalize, with_half=True
            ),
            probes,
        ):
            matvecs += used
            full_rules.append((nodes, weights))
            half_rules.append((half_nodes, half_weights))
    return estimate_from_rules(n, full_rules, half_rules, matvecs, trace_abs)


def estimate_from_rules(
    n: int,
    full_rules: list[tuple[np.ndarray, np.ndarray]],
    half_rules: list[tuple[np.ndarray, np.ndarray]],
    matvecs: int,
    trace_abs: float | None = None,
) -> EntropyEstimate:
    """The :class:`EntropyEstimate` of the probes' Gauss rules and their half-length rules."""
    probes = len(full_rules)
    value, per_probe = entropy_of_rules(n, full_rules, trace_abs)
    half, _ = entropy_of_rules(n, half_rules, trace_abs)
    stderr = float(np.std(per_probe, ddof=1) / math.sqrt(probes)) if probes > 1 else math.nan
    if trace_abs is None:
        t = _traces(n, full_rules)
        t_mean = float(np.mean(t))
        t_err = float(np.std(t, ddof=1) / math.sqrt(probes)) if probes > 1 else math.nan
    else:
        t_mean, t_err = float(trace_abs), 0.0
    return EntropyEstimate(value, stderr, probes, matvecs, abs(value - half), t_mean, t_err)


def _traces(n: int, rules: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each probe's estimate ``n Σ w |θ|`` of ``tr |A|``."""
    return np.asarray([n * float(np.sum(w * np.abs(x))) for x, w in rules])


def entropy_of_rules(
    n: int, rules: list[tuple[np.ndarray, np.ndarray]], trace_abs: float | None
) -> tuple[float, np.ndarray]:
    """``H = log T − S/T`` from the probes' Gauss rules, and the per-probe values."""
    s = np.asarray([n * float(np.sum(w * _xlogx(x))) for x, w in rules])
    t = _traces(n, rules)
    if trace_abs is not None:
        t = np.full(len(rules), float(trace_abs))
    if not np.mean(t) > 0:
        return math.nan, np.full(len(rules), np.nan)
    value = math.log(float(np.mean(t))) - float(np.mean(s)) / float(np.mean(t))
    per_probe = np.log(t) - s / t if np.all(t > 0) else np.full(len(rules), np.nan)
    return value, per_probe
