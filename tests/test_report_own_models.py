"""The report on users' own models: the loss read off their targets (one-output, multi-label
and squeezed-logit classifiers, one-output regressors) and the Jacobian statistics of networks
with dead samples, against torch's dense Hessians and scikit-learn's accuracy."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("sklearn")
jsonschema = pytest.importorskip("jsonschema")

import specinterp as si  # noqa: E402
from specinterp.cli import main  # noqa: E402
from specinterp.report import METRICS_SCHEMA  # noqa: E402


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPECINTERP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


SINGLE_OUTPUT = """
import numpy as np
from sklearn.datasets import load_iris
from sklearn.neural_network import MLPClassifier, MLPRegressor

X, LABELS = load_iris(return_X_y=True)


def binary():
    net = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3000, random_state=0)
    return net.fit(X, (LABELS == 2).astype(int))


def binary_data():
    return X, (LABELS == 2).astype(int)


def multilabel():
    net = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3000, random_state=0)
    return net.fit(*multilabel_data())


def multilabel_data():
    return X, np.stack([LABELS == 0, LABELS == 2, X[:, 0] > 5.8], axis=1).astype(int)


def regressor():
    net = MLPRegressor(hidden_layer_sizes=(8,), max_iter=3000, random_state=0)
    return net.fit(X[:, :3], X[:, 3])


def regressor_data():
    return X[:, :3], X[:, 3]
"""


@pytest.mark.parametrize(
    ("kind", "loss"),
    [("binary", "bce_with_logits"), ("multilabel", "bce_with_logits"), ("regressor", "mse")],
)
def test_single_output_models_take_their_natural_targets(tmp_path, kind, loss):
    """A binary classifier with one logit and 0/1 labels, a multi-label one (0/1 labels of the
    outputs' shape; the report stopped on a NumPy broadcast error) and a one-output regressor
    with targets ``(N,)`` (scikit-learn's own conventions, and a torch ``Linear(d, 1)`` head's):
    the report takes the binary cross-entropy and the squared error, with the targets as that
    one column; its accuracy is scikit-learn's and its Hessian the dense torch Hessian's."""
    torch = pytest.importorskip("torch")
    (tmp_path / "single.py").write_text(SINGLE_OUTPUT)
    s = importlib.util.spec_from_file_location("single_output_models", tmp_path / "single.py")
    mod = importlib.util.module_from_spec(s)
    s.loader.exec_module(mod)
    spec = str(tmp_path / "single.py")
    out = tmp_path / kind
    args = ["report", "--model", f"{spec}:{kind}", "--data", f"{spec}:{kind}_data"]
    assert main([*args, "--samples", "30", "--out", str(out), "--format", "json", "--quiet"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(data, METRICS_SCHEMA)
    assert data["loss"] == loss

    est, (x, y) = getattr(mod, kind)(), getattr(mod, f"{kind}_data")()
    idx = np.sort(np.random.default_rng(0).choice(len(y), size=30, replace=False))
    if kind == "regressor":
        assert data["accuracy"] is None
    else:  # scikit-learn's score: the fraction of samples with every label right
        assert data["accuracy"] == pytest.approx(est.score(x[idx], y[idx]))
    # the Hessian of the mean loss over all 150 samples, dense, by torch autograd
    weights = [
        torch.tensor(w) for pair in zip(est.coefs_, est.intercepts_, strict=True) for w in pair
    ]
    shapes = [w.shape for w in weights]
    xt, yt = torch.tensor(x), torch.tensor(y, dtype=torch.float64).reshape(len(y), -1)

    def mean_loss(flat):
        parts = torch.split(flat, [int(np.prod(sh)) for sh in shapes])
        w1, b1, w2, b2 = (p.reshape(sh) for p, sh in zip(parts, shapes, strict=True))
        z = torch.relu(xt @ w1 + b1) @ w2 + b2
        if kind != "regressor":
            per = torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none")
        else:
            per = 0.5 * (z - yt) ** 2
        return per.sum() / len(y)

    flat = torch.cat([w.reshape(-1) for w in weights])
    dense = torch.autograd.functional.hessian(mean_loss, flat).numpy()
    top = np.sort(np.linalg.eigvalsh(dense))[::-1][: len(data["hessian"]["top_eigenvalues"])]
    np.testing.assert_allclose(data["hessian"]["top_eigenvalues"], top, rtol=1e-6)


DEAD_SAMPLES = """
import numpy as np
import torch


def model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    with torch.no_grad():  # h = relu(x): every unit dead on an all-negative input
        net[0].weight.copy_(torch.eye(4))
        net[0].bias.zero_()
    return net.double().eval()


def data():
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((20, 4))) + 0.1
    x[::2] *= -1  # ten samples whose Jacobian is zero
    return x, rng.integers(0, 3, 20)
"""


def test_jacobian_statistics_say_over_how_many_samples(tmp_path):
    """Samples with a zero Jacobian (every ReLU dead) have no entropy: the statistics are over
    the others, and the report says how many (it did not)."""
    pytest.importorskip("torch")
    (tmp_path / "dead.py").write_text(DEAD_SAMPLES)
    spec = str(tmp_path / "dead.py")
    out = tmp_path / "dead"
    args = ["report", "--model", f"{spec}:model", "--data", f"{spec}:data", "--samples", "20"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(data, METRICS_SCHEMA)
    assert data["jacobian"]["entropy"]["count"] == 10
    assert data["jacobian"]["operator_norm"]["count"] == 20  # zero, but finite
    assert "over the 10 of 20 samples where it is finite" in (out / "index.html").read_text()


def test_task_for_squeezed_binary_logits(rng):
    """A binary classifier whose forward squeezes its one logit to ``(N,)`` (a common torch
    idiom): the binary cross-entropy on the labels as floats, accuracy by ``logit > 0``; it
    reached cross-entropy, which needs a class axis."""
    from specinterp.report.task import task_for

    y = rng.integers(0, 2, size=12)
    logits = rng.standard_normal(12)
    task = task_for(y, (), 12)
    assert task.loss_name == "bce_with_logits" and not task.column
    assert task.accuracy(logits, y) == pytest.approx(np.mean((logits > 0) == (y == 1)))
    t = task.targets(y, logits)
    assert t.dtype == logits.dtype and np.array_equal(t, y.astype(float))
    loss = si.losses.get_loss(task.loss)
    want = np.mean(np.logaddexp(0, logits) - y * logits)
    assert float(np.mean(loss.per_sample(logits[:, None], t[:, None]))) == pytest.approx(want)
