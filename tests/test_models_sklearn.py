"""scikit-learn MLPs converted to arraynet networks: predictions and curvature.

The converted network's logits reproduce ``predict_proba`` / ``predict`` of the fitted
estimator on real data (scikit-learn's digits), and its Hessian equals a float64 torch
rebuild of the same weights, differentiated by ``torch.autograd.functional.hessian``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402

import specinterp as si  # noqa: E402
from specinterp.errors import ModelError  # noqa: E402


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:300] / 16.0, y[:300]


def _fit(est, x, y):
    with warnings.catch_warnings():  # a few iterations are enough; convergence is not tested
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(x, y)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_multiclass_classifier_gives_predict_proba(digits, activation):
    x, y = digits
    est = _fit(
        MLPClassifier(
            hidden_layer_sizes=(12, 7), activation=activation, max_iter=5, random_state=0
        ),
        x,
        y,
    )
    model = si.as_model(est)
    assert "sklearn MLPClassifier" in repr(model)
    np.testing.assert_allclose(
        _softmax(model.apply(x)), est.predict_proba(x), rtol=1e-12, atol=1e-15
    )


def test_binary_and_regressor(digits):
    x, y = digits
    binary = _fit(
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0), x, (y > 4).astype(int)
    )
    z = si.as_model(binary).apply(x)
    assert z.shape == (300, 1)
    np.testing.assert_allclose(
        1 / (1 + np.exp(-z[:, 0])), binary.predict_proba(x)[:, 1], rtol=1e-12
    )
    reg = _fit(
        MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0), x, y.astype(float)
    )
    np.testing.assert_allclose(si.as_model(reg).apply(x)[:, 0], reg.predict(x), rtol=1e-12)
    poisson = _fit(
        MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), max_iter=5, random_state=0),
        x,
        y.astype(float),
    )
    np.testing.assert_allclose(np.exp(si.as_model(poisson).apply(x)[:, 0]), poisson.predict(x))


def test_classifier_hessian_matches_torch_rebuild(digits):
    torch = pytest.importorskip("torch")
    x, y = digits[0][:40], digits[1][:40]
    est = _fit(
        MLPClassifier(hidden_layer_sizes=(6,), activation="tanh", max_iter=3, random_state=0), x, y
    )
    h = si.hessian(est, x, y, "cross_entropy")
    w1, w2 = (torch.tensor(c) for c in est.coefs_)
    b1, b2 = (torch.tensor(c) for c in est.intercepts_)
    sizes = [w1.numel(), b1.numel(), w2.numel(), b2.numel()]
    # arraynet order: Dense weight (out, in) before bias, layer by layer
    flat = torch.cat([w1.T.reshape(-1), b1, w2.T.reshape(-1), b2])
    xt, yt = torch.tensor(x), torch.tensor(y)

    def loss(theta):
        a, b, c, d = torch.split(theta, sizes)
        hid = torch.tanh(xt @ a.reshape(w1.T.shape).T + b)
        return torch.nn.functional.cross_entropy(hid @ c.reshape(w2.T.shape).T + d, yt)

    np.testing.assert_allclose(h, torch.autograd.functional.hessian(loss, flat).numpy(), atol=1e-12)


def test_unfitted_and_non_network_estimators_are_refused():
    with pytest.raises(ModelError, match="not fitted"):
        si.as_model(MLPClassifier())
    with pytest.raises(ModelError, match="not a network"):
        si.as_model(LogisticRegression())
