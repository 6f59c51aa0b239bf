"""The main job: its numbers against independent computations, and its error handling."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from specinterp.cli import main
from specinterp.report import run_digits_analysis
from specinterp.report.digits import mlp_input_jacobians

from .reference import stats


@pytest.fixture(scope="module")
def analysis():
    return run_digits_analysis(seed=1, samples=40)


def _logits(weights, biases, x):
    h = x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h


def test_model_is_really_trained(analysis):
    assert analysis.test_accuracy > 0.9  # a 10-class problem: chance is 0.1


def test_jacobians_match_central_differences(analysis):
    x = analysis.x_test[:5]
    h = 1e-6
    for n in range(5):
        fd = np.empty((10, 64))
        for j in range(64):
            e = np.zeros(64)
            e[j] = h
            fd[:, j] = (
                _logits(analysis.weights, analysis.biases, x[n] + e)
                - _logits(analysis.weights, analysis.biases, x[n] - e)
            ) / (2 * h)
        np.testing.assert_allclose(analysis.jacobians[n], fd, rtol=1e-6, atol=1e-6)


def test_jacobian_summary_matches_reference(analysis):
    per_sample = [stats(j) for j in analysis.jacobians]
    for name in ("entropy", "effective_rank", "stable_rank", "attribution_condition_number"):
        ref = np.array([s[name] for s in per_sample])
        np.testing.assert_allclose(getattr(analysis.jacobian, name), ref, rtol=1e-10)


def test_layer_rows_match_reference(analysis):
    for w, d in zip(analysis.weights, analysis.layers, strict=True):
        ref = stats(w.T)
        assert d.stable_rank == pytest.approx(ref["stable_rank"], rel=1e-10)
        assert d.entropy == pytest.approx(ref["entropy"], rel=1e-10)
        m, n = sorted(w.shape)
        eig = np.linalg.eigvalsh((w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w) / n)
        assert d.top_eigenvalue == pytest.approx(eig[-1], rel=1e-10)
        assert d.law.ratio == pytest.approx(m / n)


def test_product_form_on_a_single_linear_layer():
    w = np.arange(6.0).reshape(3, 2)
    jac = mlp_input_jacobians([w], [np.zeros(2)], np.ones((4, 3)))
    np.testing.assert_array_equal(jac, np.broadcast_to(w.T, (4, 2, 3)))


def test_main_prints_tables_and_writes_json(tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["report", "--samples", "20", "--seed", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Marchenko–Pastur" in text and "attribution_condition_number" in text
    data = json.loads(out.read_text())
    assert len(data["layers"]) == 3
    assert 0.9 < data["test_accuracy"] <= 1.0
    h = data["jacobian"]["normalized_entropy"]
    assert 0.0 <= h["min"] <= h["mean"] <= h["max"] <= 1.0
    assert data["jacobian"]["entropy"]["max"] <= math.log(10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--samples", "0"], "samples must be between"),
        (["report", "--samples", "5", "--json", "/nonexistent/dir/m.json"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_error(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("specinterp: error:") and message in err and "\n" not in err


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "specinterp", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "report" in proc.stdout
