"""Spectral quantities along a training run: one row per checkpoint.

:func:`checkpoint_sweep` evaluates a chosen set of quantities at every checkpoint of a model —
torch state dicts (or ``.pt`` files of them), JAX parameter pytrees, arraynet parameter lists
(or ``.npz`` files with arrays ``p0, p1, …``), flat parameter vectors of an adapter. Run in
order on one process, each Lanczos solve starts from the previous checkpoint's Ritz vectors
(consecutive checkpoints have nearby top eigenvectors, so fewer products are needed); on an
executor (a thread or process pool, a ``dask.distributed.Client``) the checkpoints run in
parallel, each from a random start.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _xp

Array = Any

__all__ = ["QUANTITIES", "CheckpointSweep", "checkpoint_sweep", "model_at"]

#: what :func:`checkpoint_sweep` can measure at each checkpoint
QUANTITIES = (
    "hessian_top",  # top eigenvalue of the loss Hessian over the data
    "hessian_trace",  # its trace (XTrace, 60 products)
    "ntk_condition",  # κ(K) of the NTK on the first ntk_samples inputs (+∞: singular)
    "jacobian_entropy",  # mean spectral entropy H(J_i) of the input Jacobians
    "weight_alpha",  # median power-law exponent α over the weight layers
    "gmsi",  # the Global Matrix Stability Index on the first ntk_samples inputs
)


@dataclass
class CheckpointSweep:
    """Quantities along a run: ``values[q][i]`` is quantity ``q`` at checkpoint ``steps[i]``.

    ``num_matvecs[q][i]`` counts the operator products spent on it (Krylov quantities).
    """

    steps: list[Any]
    values: dict[str, np.ndarray]
    num_matvecs: dict[str, list[int]] = field(default_factory=dict)

    def as_frame(self) -> Any:
        """A ``pandas.DataFrame`` indexed by step (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("as_frame needs pandas: pip install pandas") from exc

        return pd.DataFrame(self.values, index=pd.Index(self.steps, name="step"))


def model_at(model: Any, checkpoint: Any) -> Any:
    """``model`` with the parameters of ``checkpoint`` (see the module docstring for forms)."""
    from .model import as_model

    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        if path.endswith(".npz"):
            with np.load(path) as data:
                checkpoint = [data[f"p{i}"] for i in range(len(data.files))]
        else:
            import torch

            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    kind = type(model).__module__.split(".")[0]
    if kind == "torch":
        other = copy.deepcopy(model)
        other.load_state_dict(checkpoint)
        return as_model(other.eval())
    if hasattr(model, "layers") and hasattr(model, "with_params"):  # arraynet Sequential
        return as_model(model.with_params(list(checkpoint)))
    if isinstance(model, tuple) and len(model) == 2:  # JAX (apply_fn, params)
        return as_model(model[0], checkpoint)
    return as_model(model).with_params(checkpoint)  # an adapter and a flat vector


def _first(data: Any, count: int) -> tuple[Array, Array]:
    from .batches import as_batches

    x, y = next(iter(as_batches(data)))
    return x[:count, ...], y[:count, ...]


def _measure(
    m: Any,
    data: Any,
    loss: Any,
    quantities: Sequence[str],
    ntk_samples: int,
    seed: int,
    start: Any,
) -> tuple[dict[str, float], dict[str, int], Any]:
    from .diagnostics import jacobian_spectra
    from .linalg import eigsh, trace
    from .model_spectra import model_layers
    from .operators import hessian_operator, ntk
    from .spectra import condition_number
    from .stability_index import gmsi

    out: dict[str, float] = {}
    counts: dict[str, int] = {}
    ritz = None
    xs, ys = _first(data, ntk_samples)
    if "hessian_top" in quantities or "hessian_trace" in quantities:
        op = hessian_operator(m, data=data, loss=loss)
        if "hessian_top" in quantities:
            res = eigsh(op, 1, tol=1e-6, seed=seed, v0=start, return_vectors=True)
            out["hessian_top"] = float(_xp.to_numpy(res.values)[0])
            counts["hessian_top"] = res.num_matvecs
            ritz = res.vectors[:, 0]
        if "hessian_trace" in quantities:
            tr = trace(op, num_matvecs=60, seed=seed)
            out["hessian_trace"], counts["hessian_trace"] = tr.estimate, tr.num_matvecs
    if "ntk_condition" in quantities:  # λ_max / λ_min, +∞ when K is singular to rounding
        out["ntk_condition"] = float(condition_number(ntk(m, xs)))
    if "jacobian_entropy" in quantities:
        out["jacobian_entropy"] = float(np.mean(_xp.to_numpy(jacobian_spectra(m, xs).entropy)))
    if "weight_alpha" in quantities:
        rows = model_layers(m, num_bootstrap=0, randomize=False, as_frame=False)
        out["weight_alpha"] = float(np.nanmedian([r["alpha"] for r in rows]))
    if "gmsi" in quantities:
        out["gmsi"] = float(gmsi(m, xs, ys, loss=loss, seed=seed).value)
    return out, counts, ritz


def _task(model: Any, ckpt: Any, data: Any, loss: Any, q: Sequence[str], n: int, seed: int):
    values, counts, _ = _measure(model_at(model, ckpt), data, loss, q, n, seed, None)
    return values, counts


def checkpoint_sweep(
    model: Any,
    checkpoints: Sequence[Any],
    data: Any,
    loss: Any,
    *,
    quantities: Sequence[str] = ("hessian_top", "ntk_condition", "jacobian_entropy"),
    steps: Sequence[Any] | None = None,
    ntk_samples: int = 32,
    executor: Any = None,
    warm_start: bool = True,
    seed: int = 0,
) -> CheckpointSweep:
    """Evaluate ``quantities`` at every checkpoint of ``model``.

    Parameters
    ----------
    model
        The architecture: a torch module, an arraynet ``Sequential``, a JAX
        ``(apply_fn, params)`` pair, or an adapter (with flat-vector checkpoints).
    checkpoints : sequence
        Parameters in the model's form, or paths (``.pt`` state dicts, ``.npz`` arraynet).
    data
        An ``(x, y)`` batch or batches (:func:`specinterp.batches.as_batches`): the Hessian is
        of the loss over all of it; the NTK, Jacobian and GMSI use the first ``ntk_samples``
        samples of the first batch.
    loss
        The loss.
    quantities : sequence of str
        Any of :data:`QUANTITIES`.
    steps : sequence, optional
        Labels of the checkpoints (default ``0, 1, …``).
    executor : optional
        ``submit``-style executor for the checkpoints in parallel (no warm start then).
    warm_start : bool
        In order on one process: start each top-eigenvalue solve from the previous
        checkpoint's Ritz vector.
    seed : int

    """
    unknown = set(quantities) - set(QUANTITIES)
    if unknown:
        raise ValueError(f"quantities take {list(QUANTITIES)}; got {sorted(unknown)}")
    steps = list(range(len(checkpoints))) if steps is None else list(steps)
    if len(steps) != len(checkpoints):
        raise ValueError(f"{len(steps)} steps for {len(checkpoints)} checkpoints")
    rows: list[tuple[dict[str, float], dict[str, int]]] = []
    if executor is not None:
        futures = [
            executor.submit(_task, model, c, data, loss, list(quantities), ntk_samples, seed)
            for c in checkpoints
        ]
        rows = [f.result() for f in futures]
    else:
        start = None
        for c in checkpoints:
            values, counts, ritz = _measure(
                model_at(model, c), data, loss, quantities, ntk_samples, seed, start
            )
            start = ritz if warm_start else None
            rows.append((values, counts))
    return CheckpointSweep(
        steps=steps,
        values={q: np.array([r[0][q] for r in rows]) for q in quantities},
        num_matvecs={q: [r[1][q] for r in rows] for q in quantities if q in rows[0][1]},
    )
