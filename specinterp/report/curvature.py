"""The report's Hessian step: top-k of the whole loss, its density, and the batch-to-batch spread.

Each run shows a progress bar, and the density is fitted to a time budget: the top-k run
measures what one product of the whole-data Hessian costs, and the stochastic Lanczos
quadrature (:ref:`theory-slq`) then takes its default ``4 × 60`` products only when they fit in
``density_seconds``; otherwise fewer probes (down to 2), then fewer Lanczos steps (down to 20).
The report states the probes and steps it used. On a language model's per-token loss one
product can take a second, and the default density alone four minutes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _xp
from .._progress import counted
from ..data_operators import DataHessianOperator
from ..linalg import eigsh, spectral_density
from ..linalg.results import Density, EigResult
from ..operators import hessian_operator

__all__ = ["DENSITY_SECONDS", "Curvature", "curvature", "density_plan", "report_tol"]

#: default seconds the report's Hessian density may take (``--density-seconds``)
DENSITY_SECONDS = 120.0
#: the density's probes and Lanczos steps when they fit, and the least it is reduced to
DENSITY_PROBES, DENSITY_STEPS = 4, 60
MIN_PROBES, MIN_STEPS = 2, 20


@dataclass(frozen=True)
class Curvature:
    """What the report's Hessian step computed."""

    top: EigResult
    density: Density
    #: standard deviation of each top eigenvalue across the batches (NaN for one batch)
    spread: np.ndarray
    probes: int
    steps: int
    num_samples: int
    num_batches: int


def report_tol(model: Any) -> float:
    """The report's residual tolerance: ``√eps`` of the model's precision, at most 1e-6.

    An eigenvalue's error is about the square of its relative residual (``|λ − θ| ≤ r²/gap``),
    so ``√eps`` already resolves the eigenvalues to the model's own precision: on a float32
    GPT-2 the top 8 of the per-token loss took 85 products at 1e-4 and 168 at 1e-6, with the
    same values to the last float32 digit.
    """
    return max(1e-6, math.sqrt(_xp.eps(model.xp, model.dtype)))


def density_plan(per_product: float, seconds: float, num_params: int) -> tuple[int, int]:
    """``(probes, steps)`` of the density: the defaults, or fewer to fit ``seconds``.

    Probes go first (down to :data:`MIN_PROBES`: the density's variance grows, its resolution
    stays), then steps (down to :data:`MIN_STEPS`: fewer Gauss nodes per probe). Never more
    steps than parameters, and never below the minimum, whatever the budget.
    """
    steps = min(DENSITY_STEPS, num_params)
    fit = int(seconds / per_product) if per_product > 0 else DENSITY_PROBES * steps
    probes = min(DENSITY_PROBES, max(MIN_PROBES, fit // steps))
    if probes * steps > fit:
        steps = min(steps, max(MIN_STEPS, fit // probes))
    return probes, steps


def curvature(
    model: Any,
    batches: list[tuple[Any, Any]],
    loss: Any,
    *,
    seed: int,
    density_seconds: float = DENSITY_SECONDS,
    progress: bool = True,
) -> Curvature:
    """Top-k and density of the whole loss over ``batches``, and each batch's top-k.

    The top ``k = min(8, p)`` eigenvalues to the relative tolerance :func:`report_tol`
    (:ref:`numerics-residuals`); each batch alone to 1e-3 (a statistical spread, not a digit of
    the answer), skipped when there is one batch.
    """
    hop = DataHessianOperator(model, batches, loss)
    k = min(8, model.num_params)
    typical = (5 * k, 25 * k)  # the float32 GPT-2's 8 clustered values: 81 products
    start = time.perf_counter()
    with counted(hop, "report: Hessian top-k", enabled=progress, typical=typical) as op:
        top = eigsh(op, k, which="LA", tol=report_tol(model), seed=seed, max_iter=100)
    per = (time.perf_counter() - start) / max(1, top.num_matvecs)
    probes, steps = density_plan(per, density_seconds, model.num_params)
    with counted(hop, "report: Hessian density (SLQ)", probes * steps, enabled=progress) as op:
        dens = spectral_density(op, num_probes=probes, num_steps=steps, seed=seed)
    spread = np.full(k, np.nan)
    if len(batches) > 1:
        values = []
        for xb, yb in batches:
            batch_op = hessian_operator(model, xb, yb, loss)
            with counted(batch_op, "report: Hessian top-k per batch", enabled=progress) as op:
                values.append(_xp.to_numpy(eigsh(op, k, tol=1e-3).values))
        spread = np.std(np.stack(values), axis=0, ddof=1)
    return Curvature(top, dens, spread, probes, steps, hop.num_samples, hop.num_batches)
