"""Everything the report shows, computed from one model and one batch of real data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _xp, attribution
from .._progress import counted
from ..diagnostics import JacobianSpectra, jacobian_spectra
from ..heavy_tails import PowerLawFit, power_law_fit
from ..linalg import eigsh
from ..model import input_space
from ..operators import ntk, ntk_operator
from ..rmt import LayerDiagnostics, layer_diagnostics
from ..stability_index import GMSIInputs, GMSIResult, gmsi
from ..views import output_position
from .curvature import DENSITY_SECONDS, curvature, report_tol
from .task import task_for

__all__ = ["ReportData", "analyse"]


@dataclass
class ReportData:
    """The numbers and arrays of one report (host NumPy arrays)."""

    model: str
    data: str
    seed: int
    num_samples: int
    loss: str
    accuracy: float | None
    layers: list[tuple[str, LayerDiagnostics, np.ndarray]]
    jacobian: JacobianSpectra
    ntk_eigenvalues: np.ndarray
    ntk_samples: int
    hessian_values: np.ndarray
    hessian_residuals: np.ndarray
    hessian_converged: bool
    hessian_matvecs: int
    hessian_samples: int
    hessian_batches: int
    #: standard deviation of each top eigenvalue across the batches (one batch's Hessian each)
    hessian_batch_spread: np.ndarray
    density_grid: np.ndarray
    density: np.ndarray
    #: the density's SLQ probes and Lanczos steps (fewer than 4 × 60 to fit its time budget)
    density_probes: int
    density_steps: int
    gmsi: GMSIResult
    attribution: dict[str, Any]
    examples: dict[str, np.ndarray]
    input_shape: tuple[int, ...]
    timings: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    #: the power-law fit of each layer's ESD tail, in the order of ``layers``
    tails: list[PowerLawFit] = field(default_factory=list)


def _np(a: Any) -> np.ndarray:
    return np.asarray(_xp.to_numpy(a))


def analyse(
    model: Any,
    x: Any,
    y: Any,
    *,
    model_name: str,
    data_name: str,
    seed: int,
    step: Any,
    curvature_data: tuple[Any, Any] | None = None,
    density_seconds: float = DENSITY_SECONDS,
    progress: bool = True,
) -> ReportData:
    """Run every analysis; ``step(name)`` is a context manager that reports progress.

    The Hessian is of the loss over ``curvature_data`` (default ``x, y``), in batches of 128
    (:func:`.curvature.curvature`: its density is fitted to ``density_seconds``). ``progress``
    shows bars and time estimates on the long runs.
    """
    n = int(x.shape[0])
    with step("predictions"):
        z = model.apply(x)
        out_shape = tuple(model.output_shape(x))
        y_np = _np(y)
        task = task_for(y_np, out_shape, n)  # the loss, read off the targets (.task)
        loss_name, loss, sequence = task.loss_name, task.loss, task.sequence
        accuracy = task.accuracy(_np(z).reshape(n, *out_shape), y_np)
        y = task.targets(y, z)
    full_model, y_full = model, y
    if sequence:  # per-sample analyses look at the next-token outputs at the last position
        model, y = output_position(full_model, x), y[:, -1, ...]
        model_name += " — per-sample analyses: next-token logits at the last position"
        z = model.apply(x)
    xp = model.xp
    c = int(z.shape[1])
    with step("weight spectra"):
        layers = []
        for name, w in getattr(full_model, "weight_matrices", list)():
            if min(w.shape) >= 2:
                diag = layer_diagnostics(w)
                layers.append((name, diag, diag.eigenvalues))
    with step("heavy tails"):
        tails = [power_law_fit(lam, num_bootstrap=50, seed=seed) for _, _, lam in layers]
    with step("Jacobian spectra"):
        jac = jacobian_spectra(model, x)
        jac = JacobianSpectra(**{k: _np(v) for k, v in jac.__dict__.items()})
    small = min(n, max(2, 640 // c))
    xs, ys = x[:small, ...], y[:small, ...]
    k_dense = None  # computed once: the NTK panel and the GMSI both use it
    with step("NTK spectrum"):
        if small * c * model.num_params * 8 <= 2**29:
            k_dense = _np(ntk(model, xs))
            ntk_eigs = np.sort(np.linalg.eigvalsh(k_dense))[::-1]
        else:
            with counted(ntk_operator(model, xs), "report: NTK top-k", enabled=progress) as op:
                res = eigsh(op, min(20, small * c), tol=report_tol(model), seed=seed)
            ntk_eigs = _np(res.values)
    if curvature_data is None:
        xc, yc = x, y_full
    else:  # the targets as the loss reads them, as for x, y
        xc, yc = curvature_data[0], task.targets(curvature_data[1], z)
    nc = int(xc.shape[0])
    hb = min(nc, 128)
    with step("Hessian top-k and density (all data, in batches)"):
        # the loss of all the data in batches of 128 (the whole, per-token loss), each batch alone
        batches = [(xc[i : i + hb, ...], yc[i : i + hb, ...]) for i in range(0, nc, hb)]
        curv = curvature(
            full_model,
            batches,
            loss,
            seed=seed,
            density_seconds=density_seconds,
            progress=progress,
        )
    with step("GMSI"):
        given = GMSIInputs(
            jacobian=JacobianSpectra(**{k: v[:small] for k, v in jac.__dict__.items()}),
            ntk=k_dense,
        )
        g = gmsi(
            model,
            xs,
            ys,
            loss=loss,
            seed=seed,
            num_probes=5,
            num_steps=40,
            tol=report_tol(model),
            given=given,
            progress=progress,
        )
    with step("attribution"):
        target = np.argmax(_np(z), axis=1)
        tokens_model, tokens_x = model, x
        model, x = input_space(model, x)  # token ids: maps over the token embeddings
        scale = float(np.std(_np(x))) or 1.0
        radius = 0.05 * scale

        def explain(inp: Any) -> Any:
            reps = int(inp.shape[0]) // n
            return attribution.saliency(model, inp, np.repeat(target, reps))

        clean = explain(x)
        noise = _xp.as_generator(seed, xp, _xp.device(x)).normal(
            tuple(x.shape), dtype=x.dtype, scale=radius
        )
        noisy_x = x + noise
        noisy = attribution.saliency(model, noisy_x, target)
        d = math.prod(x.shape[1:])
        k_top = max(1, d // 10)
        sens = _np(attribution.max_sensitivity(explain, x, radius=radius, num_samples=8, seed=seed))
        few = min(4, n)
        # an embedded view is bound to its token ids: take the view of the first few
        few_model = input_space(tokens_model, tokens_x[:few, ...])[0]
        ig = attribution.integrated_gradients(few_model, x[:few, ...], target[:few], steps=32)
        ig_noisy = attribution.integrated_gradients(
            few_model, noisy_x[:few, ...], target[:few], steps=32
        )
        attr_numbers = {
            "method": "saliency of the predicted class",
            "perturbation": f"Gaussian, std {radius:.3g} (5 % of the data's std)",
            "max_sensitivity_mean": float(np.mean(sens)),
            "max_sensitivity_max": float(np.max(sens)),
            "topk_intersection_mean": float(
                np.mean(_np(attribution.topk_intersection(clean, noisy, k_top)))
            ),
            "spearman_mean": float(np.nanmean(_np(attribution.spearman_correlation(clean, noisy)))),
            "frechet_distance": attribution.frechet_distance(clean, noisy) if n >= 2 else None,
            "ig_completeness_error_max": float(np.max(_np(ig.completeness_error))),
        }
        examples = {
            "x": _np(x[:few, ...]),
            "x_noisy": _np(noisy_x[:few, ...]),
            "saliency": _np(clean[:few, ...]),
            "saliency_noisy": _np(noisy[:few, ...]),
            "ig": _np(ig.attributions),
            "ig_noisy": _np(ig_noisy.attributions),
            "target": target[:few],
            "sensitivity": sens[:few],
        }
    return ReportData(
        model=model_name,
        data=data_name,
        seed=seed,
        num_samples=n,
        loss=loss_name,
        accuracy=accuracy,
        layers=layers,
        jacobian=jac,
        ntk_eigenvalues=ntk_eigs,
        ntk_samples=small,
        hessian_values=_np(curv.top.values),
        hessian_residuals=_np(curv.top.residuals),
        hessian_converged=curv.top.converged,
        hessian_matvecs=curv.top.num_matvecs,
        hessian_samples=curv.num_samples,
        hessian_batches=curv.num_batches,
        hessian_batch_spread=curv.spread,
        density_grid=np.asarray(curv.density.grid),
        density=np.asarray(curv.density.density),
        density_probes=curv.probes,
        density_steps=curv.steps,
        gmsi=g,
        attribution=attr_numbers,
        examples=examples,
        input_shape=tuple(x.shape[1:]),
        tails=tails,
    )
