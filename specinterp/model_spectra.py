"""One table of the weight spectra of a whole model, any framework (:ref:`theory-rmt`).

:func:`model_layers` runs, for every weight matrix of a torch, JAX / Flax / Equinox or arraynet
model, the random-matrix diagnostics of :mod:`specinterp.rmt`: the ESD of ``XXᵀ/n``, its
Marchenko–Pastur fit with edge and spikes, the heavy-tailed power-law fit of its upper tail
(:func:`specinterp.heavy_tails.power_law_fit`, with its confidence interval and whether a power
law is supported at all), ``α̂ = α log₁₀ λ_max``, stable rank and spectral entropy — and the
same after shuffling the matrix's entries: a spike that survives the shuffle comes from a few
large entries (a "correlation trap"), not from learned correlations.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _xp
from .capabilities import WeightMatrices, use
from .errors import ModelError
from .heavy_tails import power_law_fit
from .model import as_model
from .rmt import layer_diagnostics

__all__ = ["model_layers"]


def model_layers(
    model: Any,
    *,
    min_side: int = 2,
    num_bootstrap: int = 100,
    num_gof: int = 0,
    randomize: bool = True,
    seed: int = 0,
    as_frame: bool | None = None,
) -> Any:
    """The random-matrix diagnostics of every weight matrix of ``model``, one row each.

    Parameters
    ----------
    model
        Anything :func:`specinterp.as_model` accepts. Its 2-d weight matrices are analysed;
        convolution kernels are not yet.
    min_side : int
        Matrices with a side below this are skipped.
    num_bootstrap : int
        Resamples for the confidence interval of the power-law exponent.
    num_gof : int
        Synthetic data sets for the power law's goodness-of-fit p-value (0: not computed).
    randomize : bool
        Also fit the matrix with its entries shuffled (seeded) and report its spikes.
    seed : int
        Seeds the bootstrap and the shuffle.
    as_frame : bool, optional
        Return a ``pandas.DataFrame`` (default: when pandas is installed) or a list of dicts.

    Returns
    -------
    DataFrame or list of dict
        Columns ``name, shape, q, sigma2, mp_edge, lambda_max, num_spikes, ks_distance, alpha,
        alpha_lo, alpha_hi, alpha_status, alpha_gof_p, alpha_cutoff, power_law_supported,
        alpha_weighted, stable_rank,
        entropy`` and, with ``randomize``, ``num_spikes_randomized``.

    Raises
    ------
    ModelError
        If the model exposes no weight matrices.

    """
    model = as_model(model)
    try:
        weights = use(model, WeightMatrices)
    except NotImplementedError as exc:
        raise ModelError(f"model_layers needs the model's weight matrices: {exc}") from exc
    rng = np.random.default_rng(seed)
    rows = []
    for name, w in weights:
        if w.ndim != 2 or min(int(s) for s in w.shape) < min_side:
            continue
        rows.append(_row(name, w, num_bootstrap, num_gof, randomize, rng, seed))
    if as_frame is None:
        try:
            import pandas  # noqa: F401
        except ImportError:
            as_frame = False
        else:
            as_frame = True
    if as_frame:
        import pandas as pd

        return pd.DataFrame(rows)
    return rows


def _row(
    name: str,
    w: Any,
    num_bootstrap: int,
    num_gof: int,
    randomize: bool,
    rng: np.random.Generator,
    seed: int,
) -> dict[str, Any]:
    diag = layer_diagnostics(w)
    lam_np = diag.eigenvalues
    fit = power_law_fit(lam_np, num_bootstrap=num_bootstrap, num_gof=num_gof, seed=seed)
    lam_max = float(lam_np[-1])
    row: dict[str, Any] = {
        "name": name,
        "shape": tuple(int(s) for s in w.shape),
        "q": diag.law.ratio,
        "sigma2": diag.law.sigma2,
        "mp_edge": diag.law.edges[1],
        "lambda_max": lam_max,
        "num_spikes": diag.num_spikes,
        "ks_distance": diag.ks_distance,
        "alpha": fit.alpha,
        "alpha_lo": fit.alpha_ci[0],
        "alpha_hi": fit.alpha_ci[1],
        "alpha_status": fit.status,
        "alpha_gof_p": fit.gof_p_value,
        "alpha_cutoff": fit.cutoff,
        "power_law_supported": fit.supported,
        "alpha_weighted": fit.weighted_alpha(lam_max) if fit.status == "ok" else math.nan,
        "stable_rank": diag.stable_rank,
        "entropy": diag.entropy,
    }
    if randomize:
        host = _xp.to_numpy(w).astype(np.float64)
        shuffled = rng.permutation(host.ravel()).reshape(host.shape)
        row["num_spikes_randomized"] = layer_diagnostics(shuffled).num_spikes
    return row
