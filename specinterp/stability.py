"""Algorithmic stability of the GMSI (:ref:`theory-gmsi`): retrain on a perturbed dataset, compare.

The user supplies ``fit(x, y, seed) -> model`` (any adapter's model or raw framework object);
the data are perturbed reproducibly — one training sample replaced, or a fraction of labels
flipped — and both fits are compared on an evaluation batch: the GMSI and each component
(relative change), and the predictions. For label flips, the NTK-regime prediction of T8 is
computed from the first model's empirical NTK, for comparison with what retraining did.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import _xp
from .bounds import LabelNoiseStability, ntk_label_noise_bound
from .model import as_model
from .operators import ntk
from .stability_index import GMSIResult, gmsi

Array = Any

__all__ = ["StabilityReport", "algorithmic_stability", "perturb_dataset"]


@dataclass(frozen=True)
class StabilityReport:
    """What changed when the training set was perturbed (:ref:`theory-gmsi`)."""

    perturbation: str
    changed_indices: np.ndarray
    before: GMSIResult
    after: GMSIResult
    relative_change: dict[str, float]
    prediction_change: float
    disagreement: float
    t8: LabelNoiseStability | None


def perturb_dataset(
    x: Array,
    y: Array,
    *,
    perturbation: Literal["replace_one", "flip_labels"] = "flip_labels",
    fraction: float = 0.1,
    num_classes: int | None = None,
    seed: int = 0,
) -> tuple[Array, Array, np.ndarray]:
    """A reproducibly perturbed copy of ``(x, y)`` and the indices that changed.

    ``"replace_one"`` replaces one sample (input and label) by a copy of another;
    ``"flip_labels"`` moves ``⌈fraction · N⌉`` integer labels to a different class.
    """
    xp = _xp.namespace(x)
    rng = _xp.host_generator(seed)
    n = int(x.shape[0])
    y_np = np.array(_xp.to_numpy(y))
    if perturbation == "replace_one":
        i, j = rng.choice(n, size=2, replace=False)
        x_np = np.array(_xp.to_numpy(x))
        x_np[i], y_np[i] = x_np[j], y_np[j]
        new_x = xp.asarray(x_np, dtype=x.dtype, device=_xp.device(x))
        return new_x, xp.asarray(y_np, device=_xp.device(y)), np.array([i])
    if perturbation != "flip_labels":
        raise ValueError(
            f"perturbation must be 'replace_one' or 'flip_labels'; got {perturbation!r}"
        )
    if not np.issubdtype(y_np.dtype, np.integer):
        raise TypeError("flip_labels needs integer class labels")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction}")
    c = int(y_np.max()) + 1 if num_classes is None else int(num_classes)
    idx = rng.choice(n, size=math.ceil(fraction * n), replace=False)
    y_np[idx] = (y_np[idx] + rng.integers(1, c, size=idx.size)) % c
    return x, xp.asarray(y_np, device=_xp.device(y)), np.sort(idx)


def algorithmic_stability(
    fit: Callable[[Array, Array, int], Any],
    x: Array,
    y: Array,
    x_eval: Array,
    y_eval: Array,
    *,
    loss: str = "cross_entropy",
    perturbation: Literal["replace_one", "flip_labels"] = "flip_labels",
    fraction: float = 0.1,
    seed: int = 0,
    ridge: float = 1e-3,
    t8_samples: int = 64,
    **gmsi_options: Any,
) -> StabilityReport:
    """Retrain with the same seed on a perturbed dataset and report the change (:ref:`theory-gmsi`).

    Parameters
    ----------
    fit : callable
        ``fit(x, y, seed)`` returning a trained model.
    x, y : arrays
        The training set (integer labels for ``flip_labels``).
    x_eval, y_eval : arrays
        The batch on which the GMSI and the predictions are compared.
    ridge, t8_samples : float, int
        For label flips: the T8 kernel-regression comparison uses the first ``t8_samples``
        training points and ridge ``μ``.
    **gmsi_options
        Passed to :func:`~specinterp.gmsi`.

    """
    x2, y2, changed = perturb_dataset(x, y, perturbation=perturbation, fraction=fraction, seed=seed)
    m1 = as_model(fit(x, y, seed))
    m2 = as_model(fit(x2, y2, seed))
    g1 = gmsi(m1, x_eval, y_eval, loss=loss, **gmsi_options)
    g2 = gmsi(m2, x_eval, y_eval, loss=loss, **gmsi_options)
    rel = {"gmsi": _rel(g1.value, g2.value)}
    rel.update({k: _rel(v, g2.components[k]) for k, v in g1.components.items()})
    z1 = _xp.to_numpy(m1.apply(x_eval))
    z2 = _xp.to_numpy(m2.apply(x_eval))
    t8 = None
    if perturbation == "flip_labels":
        t8 = _t8(m1, x, y, y2, x_eval, t8_samples, ridge)
    return StabilityReport(
        perturbation=perturbation,
        changed_indices=changed,
        before=g1,
        after=g2,
        relative_change=rel,
        prediction_change=float(np.mean(np.linalg.norm(z1 - z2, axis=1))),
        disagreement=float(np.mean(np.argmax(z1, axis=1) != np.argmax(z2, axis=1))),
        t8=t8,
    )


def _rel(a: float, b: float) -> float:
    return abs(b - a) / abs(a) if a != 0 else (0.0 if b == 0 else math.inf)


def _t8(
    model: Any, x: Array, y: Array, y2: Array, x_eval: Array, m: int, ridge: float
) -> LabelNoiseStability:
    """T8 with the sample-major full NTK on the first ``m`` training points."""
    xs = x[:m, ...]
    c = int(model.apply(x_eval[:1, ...]).shape[1])
    onehot = np.eye(c)
    delta = (onehot[_xp.to_numpy(y2)[:m]] - onehot[_xp.to_numpy(y)[:m]]).reshape(-1)
    k = _xp.to_numpy(ntk(model, xs))
    k_cross = _xp.to_numpy(ntk(model, x_eval, xs))
    return ntk_label_noise_bound(k, k_cross, delta, ridge=ridge)
