"""The built-in model of ``specinterp report``: an arraynet ReLU MLP trained on digits.

NumPy only. The trained weights are cached (``$SPECINTERP_CACHE`` or
``~/.cache/specinterp``) keyed by the seed, so a second run reuses them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import load_digits

__all__ = ["BuiltIn", "builtin_model", "cache_dir"]

WIDTHS = (64, 64, 10)
EPOCHS = 40


@dataclass(frozen=True)
class BuiltIn:
    """The built-in model with its held-out test data and its training data."""

    net: Any
    x_test: np.ndarray
    y_test: np.ndarray
    cached: bool
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None


def cache_dir() -> Path:
    """Where trained built-in weights are kept."""
    return Path(os.environ.get("SPECINTERP_CACHE", Path.home() / ".cache" / "specinterp"))


def builtin_model(seed: int = 0, *, progress: Any = None) -> BuiltIn:
    """Train (or load from the cache) the ReLU MLP 64-64-10 on 80 % of digits."""
    from ..adapters import arraynet as an

    x, y = load_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    path = cache_dir() / f"digits-mlp-{'-'.join(map(str, WIDTHS))}-e{EPOCHS}-seed{seed}.npz"
    net = an.init_mlp(WIDTHS, seed=seed)
    if path.is_file():
        with np.load(path) as data:
            params = [data[f"p{i}"] for i in range(len(net.params))]
        return BuiltIn(net.with_params(params), x[test], y[test], True, x[train], y[train])
    for _ in range(EPOCHS):
        net = an.train(net, x[train], y[train], epochs=1, lr=3e-3, seed=seed + _)
        if progress is not None:
            progress.update(1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"p{i}": p for i, p in enumerate(net.params)})
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs a retrain next time
    return BuiltIn(net, x[test], y[test], False, x[train], y[train])
