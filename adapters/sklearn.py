"""scikit-learn multilayer perceptrons as arraynet networks (NumPy, every quantity).

A fitted ``MLPClassifier`` or ``MLPRegressor`` is copied into an arraynet
:class:`~specinterp.adapters.arraynet.Sequential`: ``Dense(coefs_[l].T, intercepts_[l])``
layers with the hidden activation between them (``relu``, ``tanh``, ``logistic`` → sigmoid,
``identity``). The network's outputs are the *logits* — the values before scikit-learn's output
function — so ``softmax(f(x))`` is ``predict_proba(x)`` for a multi-class classifier and
``sigmoid(f(x))`` its positive-class column for a binary or multi-label one; a squared-error
regressor's outputs are its predictions, a Poisson regressor's their logarithm
(``predict = exp(f(x))``). Analyse a classifier with ``loss="cross_entropy"`` (multi-class)
or ``"bce_with_logits"`` (binary, multi-label), a regressor with ``"mse"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specinterp.errors import ModelError

from .arraynet import ArrayNetModel, Dense, ReLU, Sequential, Sigmoid, Tanh

__all__ = ["from_sklearn", "sklearn_network"]

_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "logistic": Sigmoid, "identity": None}


def sklearn_network(estimator: Any, *, dtype: Any = np.float64) -> Sequential:
    """The arraynet ``Sequential`` computing ``estimator``'s output logits."""
    kind = type(estimator).__name__
    if kind not in ("MLPClassifier", "MLPRegressor"):
        raise ModelError(
            f"scikit-learn's {kind} is not a network; specinterp converts MLPClassifier and "
            "MLPRegressor"
        )
    if not hasattr(estimator, "coefs_"):
        raise ModelError(f"the {kind} is not fitted; call .fit(X, y) first")
    act = _ACTIVATIONS.get(estimator.activation)
    if estimator.activation not in _ACTIVATIONS:
        raise ModelError(f"unsupported activation {estimator.activation!r}")
    layers: list[Any] = []
    pairs = list(zip(estimator.coefs_, estimator.intercepts_, strict=True))
    for i, (w, b) in enumerate(pairs):
        layers.append(Dense(np.asarray(w.T, dtype=dtype), np.asarray(b, dtype=dtype)))
        if i < len(pairs) - 1 and act is not None:
            layers.append(act())
    return Sequential(layers)


def from_sklearn(estimator: Any, *, dtype: Any = np.float64, **options: Any) -> ArrayNetModel:
    """``as_model`` for a fitted scikit-learn MLP (see the module docstring)."""
    model = ArrayNetModel(sklearn_network(estimator, dtype=dtype), **options)
    model.source = f"sklearn {type(estimator).__name__}"
    return model
