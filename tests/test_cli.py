"""The main job: the report's numbers against independent computations, its schema, its
options and its error handling (one line, non-zero exit, nothing half-written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
jsonschema = pytest.importorskip("jsonschema")

from specinterp.cli import main  # noqa: E402
from specinterp.report import METRICS_SCHEMA  # noqa: E402

from .reference import stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPECINTERP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def default_report(tmp_path_factory):
    os.environ.setdefault("SPECINTERP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    out = tmp_path_factory.mktemp("rep") / "report"
    assert main(["report", "--out", str(out), "--samples", "60", "--quiet"]) == 0
    return out


def test_default_report_files_and_schema(default_report):
    html = (default_report / "index.html").read_text()
    data = json.loads((default_report / "metrics.json").read_text())
    jsonschema.validate(data, METRICS_SCHEMA)
    assert html.count('<img src="data:image/png;base64,') == 7  # self-contained figures
    assert "<link" not in html and "<script" not in html
    assert data["num_samples"] == 60 and not data["missing"]


def test_default_report_numbers_are_right(default_report):
    from specinterp import datasets, input_jacobian
    from specinterp.report.builtin import builtin_model

    data = json.loads((default_report / "metrics.json").read_text())
    built = builtin_model(0)  # the cached weights the report used
    assert built.cached
    ws = [lay.weight for lay in built.net.layers if hasattr(lay, "weight")]
    for w, layer in zip(ws, data["layers"], strict=True):
        ref = stats(w)
        assert layer["stable_rank"] == pytest.approx(ref["stable_rank"], rel=1e-10)
        assert layer["entropy"] == pytest.approx(ref["entropy"], rel=1e-10)
    x, y = built.x_test, built.y_test
    idx = np.sort(np.random.default_rng(0).choice(len(y), size=60, replace=False))
    jac = input_jacobian(built.net, x[idx])
    h = [stats(j)["entropy"] for j in jac]
    assert data["jacobian"]["entropy"]["mean"] == pytest.approx(np.mean(h), rel=1e-10)
    pred = np.argmax(built.net(x[idx]), axis=1)
    assert data["accuracy"] == pytest.approx(np.mean(pred == y[idx]))
    assert data["accuracy"] > 0.9
    g = data["gmsi"]
    assert g["value"] == max(g["components"].values())
    assert datasets.load_digits()[0].shape == (1797, 64)


def test_json_and_markdown_formats(tmp_path):
    assert (
        main(
            [
                "report",
                "--out",
                str(tmp_path / "j"),
                "--format",
                "json",
                "--samples",
                "20",
                "--quiet",
            ]
        )
        == 0
    )
    assert sorted(os.listdir(tmp_path / "j")) == ["metrics.json"]
    assert (
        main(
            ["report", "--out", str(tmp_path / "m"), "--format", "md", "--samples", "20", "--quiet"]
        )
        == 0
    )
    assert "| forward |" in (tmp_path / "m" / "report.md").read_text()


@pytest.mark.parametrize("example", ["report_torch_model.py:make", "report_jax_model.py:make"])
def test_user_model_from_a_file(tmp_path, example):
    pytest.importorskip("torch" if "torch" in example else "jax")
    from specinterp.datasets import load_digits

    x, y = load_digits()
    np.savez(tmp_path / "digits.npz", x=x[:100], y=y[:100])
    out = tmp_path / "out"
    spec = str(ROOT / "examples" / example)
    assert (
        main(
            [
                "report",
                "--model",
                spec,
                "--data",
                str(tmp_path / "digits.npz"),
                "--samples",
                "30",
                "--out",
                str(out),
                "--format",
                "json",
                "--quiet",
            ]
        )
        == 0
    )
    data = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(data, METRICS_SCHEMA)
    assert data["model"] == spec and len(data["layers"]) == 2


def _run(args, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "specinterp", "report", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "SPECINTERP_CACHE": str(tmp_path / "c")},
    )
    return proc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.npz"], "does not exist"),
        (
            ["--model", str(ROOT / "examples" / "report_torch_model.py") + ":broken"],
            "raised RuntimeError",
        ),
        (
            [
                "--model",
                str(ROOT / "examples" / "report_torch_model.py") + ":make",
                "--data",
                "bad.npz",
            ],
            "cannot be applied",
        ),
        (["--data", "unpaired.npz"], "x has shape (5, 3) and y (4,): they must pair up"),
        (["--data", "float_labels.npz"], "class labels must be integers — save them with"),
        (["--out", "/proc/specinterp-report"], "cannot write the report"),
        (["--samples", "0"], "--samples"),
        (["--density-seconds", "-1"], "--density-seconds must be a positive number"),
        (["--seed", "-5"], "--seed must be a non-negative integer"),
    ],
)
def test_bad_input_is_one_line_error_and_no_report(tmp_path, args, message):
    if "torch" in " ".join(args):
        pytest.importorskip("torch")
    np.savez(tmp_path / "bad.npz", x=np.ones((5, 3)), y=np.arange(5))
    np.savez(tmp_path / "unpaired.npz", x=np.ones((5, 3)), y=np.arange(4))
    from specinterp.datasets import load_digits

    digits, labels = load_digits()
    np.savez(tmp_path / "float_labels.npz", x=digits[:20], y=labels[:20].astype(np.float64))
    proc = _run(args if "--samples" in args else [*args, "--samples", "10"], tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err and err[-1].startswith("specinterp: error:") and message in err[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "report").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".report")]


def test_help():
    proc = subprocess.run(
        [sys.executable, "-m", "specinterp", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "report" in proc.stdout


def test_missing_matplotlib_is_reported(tmp_path, monkeypatch):
    import specinterp.report.figures as figures

    def no_matplotlib(rep):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(figures, "make_figures", no_matplotlib)
    assert main(["report", "--out", str(tmp_path / "r"), "--samples", "10", "--quiet"]) == 0
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert any("matplotlib" in m for m in data["missing"])
    assert (
        "Missing: figures: matplotlib is not installed"
        in (tmp_path / "r" / "index.html").read_text()
    )


def test_language_model_report(tmp_path, monkeypatch):
    """The main job on text: the character transformer example, briefly trained."""
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("CHAR_TRANSFORMER_STEPS", "20")
    spec = str(ROOT / "examples" / "char_transformer.py")
    out = tmp_path / "lm"
    args = ["report", "--model", f"{spec}:model", "--data", f"{spec}:data"]
    assert (
        main([*args, "--samples", "6", "--hessian-samples", "6", "--out", str(out), "--quiet"]) == 0
    )
    data = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(data, METRICS_SCHEMA)
    assert "next-token logits at the last position" in data["model"]
    assert (out / "index.html").is_file()
    # recompute accuracy and the next-token Jacobian norms independently
    import importlib.util

    mod_spec = importlib.util.spec_from_file_location("char_transformer_check", spec)
    ct = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(ct)
    net = ct.model()  # cached by the report run
    x, y = ct.data()
    idx = np.sort(np.random.default_rng(0).choice(len(y), size=6, replace=False))
    ids = torch.as_tensor(x[idx])
    with torch.no_grad():
        logits = net(ids).numpy()
    assert data["accuracy"] == pytest.approx(np.mean(np.argmax(logits, -1) == y[idx]))
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def last_logits(e):  # the network from its token embeddings, last position
        h = e + net.pos_emb(torch.arange(ct.CONTEXT))
        mask = net.mask[: ct.CONTEXT, : ct.CONTEXT]
        return net.head(net.blocks(h, mask=mask, is_causal=True))[:, -1]

    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            norms = [
                torch.linalg.matrix_norm(
                    torch.autograd.functional.jacobian(
                        lambda e: last_logits(e[None])[0], net.tok_emb(ids[i])
                    ).reshape(ct.VOCAB, -1),
                    ord=2,
                ).item()
                for i in range(6)
            ]
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    assert data["jacobian"]["operator_norm"]["max"] == pytest.approx(max(norms), rel=1e-4)


def test_language_model_report_with_padded_targets(tmp_path, monkeypatch):
    """Targets labelled -100 (PyTorch's padding) are left out of the loss and the accuracy."""
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("CHAR_TRANSFORMER_STEPS", "20")
    spec = ROOT / "examples" / "char_transformer.py"
    (tmp_path / "padded.py").write_text(
        "import importlib.util\n"
        f"s = importlib.util.spec_from_file_location('ct_padded', {str(spec)!r})\n"
        "ct = importlib.util.module_from_spec(s); s.loader.exec_module(ct)\n"
        "model = ct.model\n"
        "def data():\n"
        "    x, y = ct.data()\n"
        "    y = y.copy(); y[:, :5] = -100\n"
        "    return x, y\n"
    )
    out = tmp_path / "lm"
    mod = str(tmp_path / "padded.py")
    args = ["report", "--model", f"{mod}:model", "--data", f"{mod}:data", "--samples", "6"]
    assert main([*args, "--hessian-samples", "6", "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(data, METRICS_SCHEMA)
    import importlib.util

    s = importlib.util.spec_from_file_location("ct_padded_check", str(tmp_path / "padded.py"))
    padded = importlib.util.module_from_spec(s)
    s.loader.exec_module(padded)
    x, y = padded.data()
    idx = np.sort(np.random.default_rng(0).choice(len(y), size=6, replace=False))
    with torch.no_grad():
        pred = np.argmax(padded.model()(torch.as_tensor(x[idx])).numpy(), -1)
    kept = y[idx] != -100
    assert data["accuracy"] == pytest.approx(np.mean(pred[kept] == y[idx][kept]))
    assert np.isfinite(data["hessian"]["top_eigenvalues"]).all()
