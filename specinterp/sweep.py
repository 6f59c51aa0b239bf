"""Per-sample metrics over a whole dataset, chunked, on one process or on an executor.

``sweep`` cuts the dataset into chunks of ``chunk_size`` rows, computes the requested metrics
of each chunk — locally, or on any ``concurrent.futures.Executor`` or an object with the same
``submit``, such as a ``dask.distributed.Client`` — and concatenates the per-sample results in
dataset order. Chunk ``i`` always gets the seed ``SeedSequence(seed).spawn(n)[i]``, and its
``k``-th metric that seed's child ``spawn(len(metrics))[k]``, so results are bitwise identical
whichever executor computes them.

The model is sent to the workers as the object you pass (a torch module, an arraynet network,
an Equinox module, or an ``(apply_fn, params)`` pair) and wrapped there, so it must be
picklable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _xp

Array = Any
Metric = Callable[[Any, Array, Array | None, np.random.SeedSequence], dict[str, np.ndarray]]

__all__ = ["METRICS", "sweep"]


def _np(a: Any) -> np.ndarray:
    return np.asarray(_xp.to_numpy(a))


def _jacobian_metric(
    model: Any, x: Array, y: Array | None, seq: np.random.SeedSequence
) -> dict[str, np.ndarray]:
    from .diagnostics import jacobian_spectra

    js = jacobian_spectra(model, x)
    return {k: _np(v) for k, v in js.__dict__.items() if k != "singular_values"}


def _radius_metric(
    model: Any, x: Array, y: Array | None, seq: np.random.SeedSequence
) -> dict[str, np.ndarray]:
    from .radius import certified_radius

    return {"certified_radius": _np(certified_radius(model, x))}


def _sensitivity_metric(
    model: Any, x: Array, y: Array | None, seq: np.random.SeedSequence
) -> dict[str, np.ndarray]:
    from .attribution import max_sensitivity, saliency
    from .model import input_space

    target = np.argmax(_np(model.apply(x)), axis=1)
    n = int(x.shape[0])
    # token ids are perturbed in the embedding space (integers would not move)
    model_e, e = input_space(model, x)

    def explain(inp: Array) -> Array:
        return saliency(model_e, inp, np.repeat(target, int(inp.shape[0]) // n))

    rng = np.random.default_rng(seq)
    return {
        "max_sensitivity": _np(max_sensitivity(explain, e, radius=0.05, num_samples=8, seed=rng))
    }


def _loss_metric(
    model: Any, x: Array, y: Array | None, seq: np.random.SeedSequence
) -> dict[str, np.ndarray]:
    """Predicted class (last output axis) and the per-sample cross-entropy.

    For a sequence model (outputs ``(T, V)``) both are per token: predictions ``(N, T)``, and
    the loss is the mean over the sample's tokens.
    """
    from .losses import CrossEntropy

    z = _np(model.apply(x))
    z = z.reshape(z.shape[0], *model.output_shape(x))
    out = {"prediction": np.argmax(z, axis=-1)}
    if y is not None:
        out["cross_entropy"] = np.asarray(CrossEntropy().per_sample(z, _np(y)))
    return out


#: Built-in metrics by name, each returning per-sample NumPy arrays. ``jacobian_spectra``: the
#: eight statistics of each ``J_i``; ``certified_radius``: T4's radius; ``max_sensitivity``:
#: max-sensitivity (Yeh et al. 2019) of the saliency map of the predicted class, over 8 uniform
#: L∞ perturbations of radius 0.05 drawn from the chunk's seed — of the token embeddings for a
#: model on token ids; ``predictions``: the predicted class and, with labels, the cross-entropy.
METRICS: dict[str, Metric] = {
    "jacobian_spectra": _jacobian_metric,
    "certified_radius": _radius_metric,
    "max_sensitivity": _sensitivity_metric,
    "predictions": _loss_metric,
}


def _chunk_task(
    obj: Any,
    x: Array,
    y: Array | None,
    metrics: Sequence[str | Metric],
    seq: np.random.SeedSequence,
) -> dict[str, np.ndarray]:
    """Compute every metric of one chunk (runs on a worker)."""
    from .model import as_model

    model = as_model(*obj) if isinstance(obj, tuple) else as_model(obj)
    out: dict[str, np.ndarray] = {}
    children = seq.spawn(len(metrics))  # once: each spawn call makes new children
    for metric, child in zip(metrics, children, strict=True):
        fn = METRICS[metric] if isinstance(metric, str) else metric
        out.update(fn(model, x, y, child))
    return out


def sweep(
    model: Any,
    x: Array,
    y: Array | None = None,
    *,
    metrics: Sequence[str | Metric] = ("jacobian_spectra",),
    chunk_size: int = 256,
    executor: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Per-sample ``metrics`` over ``(x, y)`` in chunks of ``chunk_size`` rows.

    Parameters
    ----------
    model
        A picklable model object (see the module docstring) — not an adapter instance.
    x, y : arrays
        Inputs ``(N, ...)`` and optional labels; any array library, or a NumPy memmap.
    metrics : sequence of str or callable
        Names from :data:`METRICS` or callables ``f(model, x, y, seed_sequence) -> dict``.
    chunk_size : int
        Rows per task.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where chunks run; ``None`` runs them here, in order.
    seed : int
        Root of the per-chunk seed sequences.
    progress : bool
        Show a tqdm bar over chunks.

    Returns
    -------
    dict of str to NumPy arrays ``(N, ...)`` in dataset order.

    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be ≥ 1; got {chunk_size}")
    unknown = [m for m in metrics if isinstance(m, str) and m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {sorted(METRICS)}")
    n = int(x.shape[0])
    starts = list(range(0, n, chunk_size))
    seqs = np.random.SeedSequence(seed).spawn(len(starts))
    chunks = [
        (x[s : s + chunk_size, ...], None if y is None else y[s : s + chunk_size, ...])
        for s in starts
    ]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(starts), desc="sweep", unit="chunk")
        except ImportError:
            bar = None
    results: list[dict[str, np.ndarray]] = []
    if executor is None:
        for (xc, yc), seq in zip(chunks, seqs, strict=True):
            results.append(_chunk_task(model, xc, yc, list(metrics), seq))
            if bar is not None:
                bar.update(1)
    else:
        futures = [
            executor.submit(_chunk_task, model, xc, yc, list(metrics), seq)
            for (xc, yc), seq in zip(chunks, seqs, strict=True)
        ]
        for fut in futures:
            results.append(fut.result())
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return {k: np.concatenate([r[k] for r in results]) for k in results[0]}
