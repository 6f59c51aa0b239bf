"""Report figures (matplotlib, optional): each returned as PNG bytes, keyed by name."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from ..model_spectra import tail_supported
from .analysis import ReportData

__all__ = ["make_figures"]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _image_side(shape: tuple[int, ...]) -> tuple[int, int] | None:
    d = math.prod(shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape[1], shape[2]
    if len(shape) == 2 and min(shape) > 1:  # tokens × embedding dimensions
        return shape[0], shape[1]
    side = math.isqrt(d)
    return (side, side) if side * side == d else None


def _grid(plt: Any, count: int) -> tuple[Any, Any]:
    """Panels four to a row (transformers have dozens of layers); spare panels hidden."""
    cols = min(count, 4)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def make_figures(rep: ReportData) -> dict[str, bytes]:
    """All figures; raises ImportError without matplotlib (the report says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, bytes] = {}
    if rep.layers:
        fig, axes = _grid(plt, len(rep.layers))
        for ax, (name, diag, lam) in zip(axes.flat, rep.layers, strict=False):
            heights, _, _ = ax.hist(
                lam, bins=40, density=True, alpha=0.6, color="#4c72b0", label="ESD"
            )
            grid = np.linspace(max(lam.min(), 1e-12), max(lam.max(), diag.law.edges[1]) * 1.05, 300)
            ax.plot(grid, diag.law.pdf(grid), color="#dd8452", label="fitted MP")
            # the MP density diverges at 0 when q = 1: scale to the histogram, not to it
            ax.set_ylim(0, 1.3 * max(float(np.max(heights)), 1e-300))
            ax.axvline(diag.law.edges[1], color="#dd8452", ls="--", lw=0.8)
            for sp in diag.spikes:
                ax.axvline(sp, color="#c44e52", lw=1.2)
            short = name if len(name) <= 26 else "…" + name[-25:]
            ax.set_title(
                f"{short} {diag.shape[0]}×{diag.shape[1]}: {diag.num_spikes} spikes", fontsize=8
            )
            ax.set_xlabel("eigenvalue of XXᵀ/n")
        axes[0][0].legend(fontsize=8)
        figs["weights"] = _png(fig)
        figs["tails"] = _png(_tails_figure(plt, rep))
        figs["alpha"] = _png(_alpha_figure(plt, rep))
    js = rep.jacobian
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
    for s in js.singular_values[: min(64, len(js.singular_values))]:
        axes[0].semilogy(
            np.arange(1, s.size + 1), np.maximum(s, 1e-16), color="#4c72b0", alpha=0.25
        )
    axes[0].set_xlabel("index i")
    axes[0].set_ylabel("σ_i(J)")
    axes[0].set_title("per-sample Jacobian spectra", fontsize=9)
    axes[1].hist(js.entropy[np.isfinite(js.entropy)], bins=30, color="#55a868")
    axes[1].set_xlabel("H(J_i)")
    axes[2].hist(
        js.attribution_condition_number[np.isfinite(js.attribution_condition_number)],
        bins=30,
        color="#8172b3",
    )
    axes[2].set_xlabel("κ_attr(J_i)")
    figs["jacobian"] = _png(fig)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
    ev = np.maximum(rep.ntk_eigenvalues, 1e-16)
    axes[0].semilogy(np.arange(1, ev.size + 1), ev, ".", color="#4c72b0")
    axes[0].set_title(f"NTK eigenvalues ({rep.ntk_samples} samples)", fontsize=9)
    axes[0].set_xlabel("index")
    idx = np.arange(1, rep.hessian_values.size + 1)
    if rep.hessian_batches > 1:  # one batch has no spread to show
        axes[1].errorbar(
            idx,
            rep.hessian_values,
            yerr=np.nan_to_num(rep.hessian_batch_spread, nan=0.0),
            fmt="none",
            capsize=3,
            color="#999999",
            label="± sd of one batch's value",
        )
    axes[1].errorbar(
        idx,
        rep.hessian_values,
        yerr=rep.hessian_residuals,
        fmt="o",
        capsize=3,
        color="#c44e52",
        label="all data (± residual bound, T9)",
    )
    axes[1].legend(fontsize=7)
    axes[1].set_title(
        f"Hessian top-k: {rep.hessian_samples} samples, "
        + ("one batch" if rep.hessian_batches == 1 else f"{rep.hessian_batches} batches"),
        fontsize=9,
    )
    axes[2].plot(rep.density_grid, rep.density, color="#4c72b0")
    axes[2].set_yscale("log")
    axes[2].set_ylim(bottom=max(1e-6, rep.density.max() * 1e-8))
    axes[2].set_title(
        f"Hessian spectral density (SLQ, {rep.density_probes} probes × {rep.density_steps} steps)",
        fontsize=9,
    )
    axes[2].set_xlabel("eigenvalue")
    figs["curvature"] = _png(fig)
    fig, ax = plt.subplots(figsize=(5, 3.0))
    comp = rep.gmsi.components
    bars = ax.bar(
        list(comp),
        list(comp.values()),
        color=["#c44e52" if k == rep.gmsi.binding else "#4c72b0" for k in comp],
    )
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_title(f"GMSI = {rep.gmsi.value:.4g} (binding: {rep.gmsi.binding})", fontsize=9)
    figs["gmsi"] = _png(fig)
    side = _image_side(rep.input_shape)
    ex = rep.examples
    rows = len(ex["target"])
    panels = ["x", "saliency", "x_noisy", "saliency_noisy", "ig", "ig_noisy"]
    fig, axes = plt.subplots(
        rows, len(panels), figsize=(2.0 * len(panels), 2.0 * rows), squeeze=False
    )
    for r in range(rows):
        for cidx, key in enumerate(panels):
            ax = axes[r][cidx]
            v = ex[key][r]
            if side is not None:
                img = v.reshape(-1, *side)
                img = img.mean(axis=0) if img.shape[0] > 1 else img[0]
                lim = np.max(np.abs(img)) or 1.0
                ax.imshow(
                    img,
                    cmap="gray" if key.startswith("x") else "RdBu_r",
                    vmin=None if key.startswith("x") else -lim,
                    vmax=None if key.startswith("x") else lim,
                )
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.bar(np.arange(v.size), v.ravel())
            if r == 0:
                ax.set_title(key.replace("_", " "), fontsize=9)
        axes[r][0].set_ylabel(
            f"class {ex['target'][r]}\nsens {ex['sensitivity'][r]:.3f}", fontsize=8
        )
    figs["attribution"] = _png(fig)
    return figs


def _tails_figure(plt: Any, rep: ReportData) -> Any:
    """Per layer: the ESD's complementary CDF on log–log axes and the fitted power law."""
    fig, axes = _grid(plt, len(rep.layers))
    for ax, (name, diag, lam), fit in zip(axes.flat, rep.layers, rep.tails, strict=False):
        x = np.sort(lam[lam > 0])
        ccdf = 1.0 - np.arange(x.size) / x.size  # P(X ≥ x_(i))
        ax.loglog(x, ccdf, ".", ms=3, color="#4c72b0", label="ESD")
        mp = np.geomspace(x[0], max(x[-1], diag.law.edges[1]), 200)
        mp_ccdf = 1.0 - np.asarray(diag.law.cdf(mp))
        ax.loglog(mp[mp_ccdf > 0], mp_ccdf[mp_ccdf > 0], color="#dd8452", lw=1, label="fitted MP")
        short = name if len(name) <= 22 else "…" + name[-21:]
        if fit.status == "ok":
            grid = np.geomspace(fit.x_min, x[-1], 50)
            frac = fit.num_tail / x.size
            ax.loglog(
                grid,
                frac * (grid / fit.x_min) ** (1.0 - fit.alpha),
                color="#c44e52",
                label="power law",
            )
            verdict = "" if tail_supported(fit, diag) else ", not supported"
            title = f"{short}: α = {fit.alpha:.2f} [{fit.alpha_ci[0]:.2f}, {fit.alpha_ci[1]:.2f}]"
            ax.set_title(title + verdict, fontsize=8)
        else:
            ax.set_title(f"{short}: {fit.status}", fontsize=8)
        ax.set_xlabel("eigenvalue of XXᵀ/n")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels collide on short ranges
    axes[0][0].set_ylabel("P(λ ≥ x)")
    axes[0][0].legend(fontsize=8)
    return fig


def _alpha_figure(plt: Any, rep: ReportData) -> Any:
    """Per-layer power-law exponent with its bootstrap interval; unsupported fits greyed."""
    fits = list(zip(rep.layers, rep.tails, strict=False))
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(fits) + 1.5), 3.0))
    for i, ((_, diag, _), fit) in enumerate(fits):
        if fit.status != "ok":
            ax.annotate(fit.status, (i, 0), rotation=90, fontsize=7, ha="center", va="bottom")
            continue
        ok = tail_supported(fit, diag)
        ax.bar(i, fit.alpha, color="#4c72b0" if ok else "#bbbbbb")
        lo, hi = fit.alpha_ci
        if not math.isnan(lo):
            # the percentile interval as it is: with x_min refitted on every resample it need
            # not contain the estimate (an error bar around the estimate would be negative)
            ax.vlines(i, lo, hi, color="black", linewidth=1)
            ax.hlines([lo, hi], i - 0.12, i + 0.12, color="black", linewidth=1)
    ax.set_xticks(range(len(fits)))
    ax.set_xticklabels(
        [n if len(n) <= 16 else "…" + n[-15:] for (n, _, _), _ in fits],
        rotation=30,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel("power-law exponent α")
    ax.set_title("α per layer, 95 % interval (grey: not supported)", fontsize=9)
    return fig
