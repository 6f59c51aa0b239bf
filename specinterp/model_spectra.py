"""One table of the weight spectra of a whole model, any framework (:ref:`theory-rmt`).

:func:`model_layers` runs, for every weight matrix and 2-d convolution of a torch, JAX / Flax /
Equinox or arraynet model, the random-matrix diagnostics of :mod:`specinterp.rmt`: the ESD,
its Marchenko–Pastur fit with edge and spikes, the heavy-tailed power-law fit of its upper tail
(:func:`specinterp.heavy_tails.power_law_fit`, with its confidence interval and whether a power
law is supported at all), ``α̂ = α log₁₀ λ_max``, stable rank and spectral entropy — and the
same after shuffling the weights: a spike that survives the shuffle comes from a few large
entries (a "correlation trap"), not from learned correlations. Convolutions get their exact
Fourier spectrum (:mod:`specinterp.conv_spectra`); matrices too large for a dense SVD get the
top of their spectrum from a matrix-free solver, with its residual bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from . import _xp
from .capabilities import ConvKernel, ConvKernels, WeightMatrices, offers, use
from .conv_spectra import conv_layer_diagnostics, reshaped_kernel
from .errors import ModelError
from .heavy_tails import PowerLawFit, power_law_fit
from .linalg.bidiag import svds
from .model import as_model
from .rmt import TW_UNITS, LayerDiagnostics, MarchenkoPastur, layer_diagnostics

__all__ = ["model_layers", "tail_supported"]

Conv = Literal["exact", "reshape", "skip"]


def model_layers(
    model: Any,
    *,
    conv: Conv = "exact",
    input_shape: Sequence[int] | None = None,
    min_side: int = 2,
    dense_max: int = 4096,
    num_top: int = 256,
    num_bootstrap: int = 100,
    num_gof: int = 0,
    randomize: bool = True,
    seed: int = 0,
    as_frame: bool | None = None,
) -> Any:
    """The random-matrix diagnostics of every weight layer of ``model``, one row each.

    Parameters
    ----------
    model
        Anything :func:`specinterp.as_model` accepts. Its 2-d weight matrices are analysed, and
        its 2-d convolutions where the model lists them (capability
        :class:`~specinterp.capabilities.ConvKernels`: torch ``nn.Conv2d``, arraynet ``Conv2d``,
        and every ``lax.conv_general_dilated`` in a JAX model's jaxpr).
    conv : {"exact", "reshape", "skip"}
        ``"exact"``: the Fourier spectrum of each convolution at its input size (exact for
        circular padding, Sedghi et al.'s circular surrogate otherwise; layers it does not
        cover — grouped, dilated, input size not divisible by the stride — fall back to the
        reshaped matrix, said in the ``kind`` column; a circular layer whose output is not
        its input size over the stride keeps part of the circular operator's outputs and is a
        surrogate too). ``"reshape"``: the
        ``c_out × c_in k_h k_w`` im2col matrix. ``"skip"``: no convolutions.
    input_shape : sequence of int, optional
        The model's input shape without the batch axis, for the convolutions' input sizes
        (default: the shape the model was built with).
    min_side : int
        Matrices with a side below this are skipped.
    dense_max : int
        Matrices whose shorter side exceeds this get only their top ``num_top`` singular values,
        by Golub–Kahan–Lanczos (:func:`specinterp.linalg.svds`): the power-law fit uses them,
        the Marchenko–Pastur ``σ²`` comes from the Frobenius norm with the spikes removed, and
        ``residual_bound`` bounds the error of every eigenvalue returned (T9); entropy and the
        KS distance, which need the whole spectrum, are NaN.
    num_top : int
        Singular values computed for such a matrix.
    num_bootstrap : int
        Resamples for the confidence interval of the power-law exponent.
    num_gof : int
        Synthetic data sets for the power law's goodness-of-fit p-value (0: not computed).
    randomize : bool
        Also analyse each layer with its entries shuffled (seeded) and report its spikes.
    seed : int
        Seeds the bootstrap, the shuffle and the matrix-free solver.
    as_frame : bool, optional
        Return a ``pandas.DataFrame`` (default: when pandas is installed) or a list of dicts.

    Returns
    -------
    DataFrame or list of dict
        Columns ``name, kind, shape, esd_size, residual_bound, q, sigma2, mp_edge, lambda_max,
        num_spikes, ks_distance, alpha, alpha_lo, alpha_hi, alpha_status, alpha_gof_p,
        alpha_cutoff, power_law_supported, alpha_weighted, stable_rank, entropy`` and, with
        ``randomize``, ``num_spikes_randomized``. ``power_law_supported`` needs, beyond
        :attr:`~specinterp.heavy_tails.PowerLawFit.supported`, a tail that reaches past the
        Marchenko–Pastur edge and its margin (at least one spike): a tail inside the fitted
        bulk's compact support is the bulk's edge — the "spuriously large α" of a random layer.
        ``kind`` is ``"matrix"``, ``"matrix top-k"``,
        ``"conv circular"``, ``"conv circular surrogate"`` or ``"conv reshaped (why)"``.

    Raises
    ------
    ModelError
        If the model exposes no weight matrices, or a convolution's input size is unknown
        with ``conv="exact"``.

    """
    if conv not in ("exact", "reshape", "skip"):
        raise ValueError(f"conv must be 'exact', 'reshape' or 'skip'; got {conv!r}")
    model = as_model(model)
    try:
        weights = use(model, WeightMatrices)
    except NotImplementedError as exc:
        raise ModelError(f"model_layers needs the model's weight matrices: {exc}") from exc
    rng = _xp.host_generator(seed)
    fit_kw = {"num_bootstrap": num_bootstrap, "num_gof": num_gof, "seed": seed}
    rows = []
    for name, w in weights:
        if w.ndim != 2 or min(int(s) for s in w.shape) < min_side:
            continue

        def analyse(a: Any) -> tuple[LayerDiagnostics, str, float]:
            if min(int(s) for s in a.shape) > dense_max:
                return _top_diagnostics(a, num_top, seed)
            return layer_diagnostics(a), "matrix", math.nan

        rows.append(_row(name, w, analyse, fit_kw, randomize, rng))
    if conv != "skip" and offers(model, ConvKernels):
        shape = None if input_shape is None else tuple(input_shape)
        try:
            kernels = use(model, ConvKernels, shape)
        except NotImplementedError:
            kernels = []
        for k in kernels:
            rows.append(_conv_row(k, conv, fit_kw, randomize, rng))
    return _table(rows, as_frame)


def tail_supported(fit: PowerLawFit, diag: LayerDiagnostics) -> bool:
    """Whether a layer's ESD has a power-law tail (:ref:`theory-power-law`).

    The fit must stand on its own (:attr:`~specinterp.heavy_tails.PowerLawFit.supported`) and
    the tail must reach past the Marchenko–Pastur edge and its Tracy–Widom margin (at least one
    spike): a tail inside the bulk's compact support is the bulk's edge, which a power law of
    any large exponent fits about as well as anything else.
    """
    return fit.supported and diag.num_spikes > 0


def _table(rows: list[dict[str, Any]], as_frame: bool | None) -> Any:
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


def _conv_row(
    k: ConvKernel, conv: Conv, fit_kw: dict[str, Any], randomize: bool, rng: np.random.Generator
) -> dict[str, Any]:
    why = None
    if conv == "reshape":
        why = ""
    elif k.groups != 1 or tuple(k.dilation) != (1, 1):
        why = " (grouped or dilated)"
    elif k.input_size is None:
        raise ModelError(
            f"the input size of convolution {k.name!r} is unknown: pass model_layers("
            "..., input_shape=(C, H, W)) — or conv='reshape' for the size-free convention"
        )
    elif k.input_size[0] % k.stride[0] or k.input_size[1] % k.stride[1]:
        why = f" (input {k.input_size} not divisible by stride {k.stride})"
    elif min(k.input_size[0], k.input_size[1]) < min(
        int(k.kernel.shape[2]), int(k.kernel.shape[3])
    ):
        why = f" (input {k.input_size} smaller than the kernel)"

    # the layer is the whole circular operator when it pads circularly to n / s outputs
    exact = (
        k.circular
        and k.input_size is not None
        and k.output_size
        == (
            k.input_size[0] // k.stride[0],
            k.input_size[1] // k.stride[1],
        )
    )

    def analyse(a: Any) -> tuple[LayerDiagnostics, str, float]:
        if why is not None:
            return layer_diagnostics(reshaped_kernel(a)), f"conv reshaped{why}", math.nan
        diag = conv_layer_diagnostics(a, k.input_size, stride=k.stride)  # type: ignore[arg-type]
        return diag, "conv circular" if exact else "conv circular surrogate", math.nan

    return _row(k.name, k.kernel, analyse, fit_kw, randomize, rng)


def _row(
    name: str,
    w: Any,
    analyse: Any,
    fit_kw: dict[str, Any],
    randomize: bool,
    rng: np.random.Generator,
) -> dict[str, Any]:
    diag, kind, residual = analyse(w)
    lam_np = diag.eigenvalues
    fit = power_law_fit(lam_np, **fit_kw)
    lam_max = float(lam_np[-1])
    row: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "shape": tuple(int(s) for s in w.shape),
        "esd_size": int(lam_np.size),
        "residual_bound": residual,
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
        "power_law_supported": tail_supported(fit, diag),
        "alpha_weighted": fit.weighted_alpha(lam_max) if fit.status == "ok" else math.nan,
        "stable_rank": diag.stable_rank,
        "entropy": diag.entropy,
    }
    if randomize:
        xp = _xp.namespace(w)
        host = _xp.to_numpy(w)
        shuffled = rng.permutation(host.ravel()).reshape(host.shape)
        row["num_spikes_randomized"] = analyse(xp.asarray(shuffled, device=_xp.device(w)))[
            0
        ].num_spikes
    return row


def _top_diagnostics(w: Any, k: int, seed: int) -> tuple[LayerDiagnostics, str, float]:
    """Diagnostics of a large matrix from its top ``k`` singular values (matrix-free).

    ``σ²`` of the Marchenko–Pastur law is the bulk's mean eigenvalue, ``(‖X‖_F²/n − Σ spikes)
    / (m − #spikes)``, iterated to a fixed point with the spikes it defines; the eigenvalue
    bound is ``|λ̃ − λ| ≤ (2σ̃ + r) r / n`` for a singular value within ``r`` of ``σ̃``.
    """
    xp = _xp.namespace(w)
    x = w if w.shape[0] <= w.shape[1] else w.T
    m, n = int(x.shape[0]), int(x.shape[1])
    res = svds(x, k=min(k, m - 1), seed=seed)
    s = np.asarray(_xp.to_numpy(res.values), dtype=np.float64)
    r = np.asarray(_xp.to_numpy(res.residuals), dtype=np.float64)
    lam = np.sort(s * s / n)
    total = float(_xp.to_numpy(xp.sum(x * x))) / n  # Σ of all m eigenvalues
    q = m / n
    law = MarchenkoPastur(q, total / m)
    spikes = np.zeros(0)
    for _ in range(20):
        spikes = law.spikes(lam, margin=law.edge_margin(m, TW_UNITS))
        bulk = (total - float(np.sum(spikes))) / (m - spikes.size)
        if bulk == law.sigma2:
            break
        law = MarchenkoPastur(q, bulk)
    diag = LayerDiagnostics(
        shape=(int(w.shape[0]), int(w.shape[1])),
        law=law,
        ks_distance=math.nan,
        spikes=spikes,
        top_eigenvalue=float(lam[-1]),
        stable_rank=total / float(lam[-1]),
        entropy=math.nan,
        normalized_entropy=math.nan,
        eigenvalues=lam,
    )
    bound = float(np.max((2 * s + r) * r / n))
    return diag, f"matrix top-{s.size}", bound
