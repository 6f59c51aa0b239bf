"""``specinterp checkpoints``: spectral quantities of the built-in MLP along its training.

Trains the built-in arraynet MLP on digits epoch by epoch (as ``specinterp report`` does),
keeps the parameters after every epoch, and sweeps them with
:func:`specinterp.checkpoints.checkpoint_sweep`: the top Hessian eigenvalue of the training
loss over every training digit, the NTK condition number and the mean Jacobian entropy on 32
held-out digits. Writes ``checkpoints.html`` (one figure per quantity against the epoch) and
``checkpoints.json``.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints import CheckpointSweep, checkpoint_sweep
from ..datasets import load_digits
from .builtin import WIDTHS
from .render import _CSS

__all__ = ["QUANTITIES_SHOWN", "train_and_sweep", "write_sweep"]

QUANTITIES_SHOWN = {
    "hessian_top": "top Hessian eigenvalue (training loss, all training digits)",
    "ntk_condition": "NTK condition number κ(K) (32 held-out digits)",
    "jacobian_entropy": "mean spectral entropy H(J_i) (32 held-out digits)",
}


def train_and_sweep(epochs: int, seed: int, progress: Any = None) -> CheckpointSweep:
    """Train the built-in MLP for ``epochs`` epochs and sweep its checkpoints (epoch 0 too)."""
    from ..adapters import arraynet as an

    x, y = load_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    net = an.init_mlp(WIDTHS, seed=seed)
    ckpts = [net.params]
    for e in range(epochs):
        net = an.train(net, x[train], y[train], epochs=1, lr=3e-3, seed=seed + e)
        ckpts.append(net.params)
        if progress is not None:
            progress.update(1)
    xt, yt = x[train], y[train]
    batches = [(xt[i : i + 256], yt[i : i + 256]) for i in range(0, len(yt), 256)]
    probe = (x[test][:32], y[test][:32])  # the NTK and Jacobian are read on held-out digits
    sweep = checkpoint_sweep(
        net, ckpts, batches, "cross_entropy", quantities=("hessian_top",), seed=seed
    )
    probes = checkpoint_sweep(
        net,
        ckpts,
        [probe],
        "cross_entropy",
        quantities=("ntk_condition", "jacobian_entropy"),
        seed=seed,
    )
    sweep.values.update(probes.values)
    return sweep


def _figure(sweep: CheckpointSweep) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in QUANTITIES_SHOWN if k in sweep.values]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(sweep.steps, sweep.values[key], "o-", color="#4c72b0", ms=3)
        ax.set_title(QUANTITIES_SHOWN[key], fontsize=8)
        ax.set_xlabel("epoch")
        if key == "ntk_condition":
            ax.set_yscale("log")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_sweep(sweep: CheckpointSweep, out: str | Path) -> Path:
    """Write ``checkpoints.json`` and ``checkpoints.html`` into ``out``; return the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {k: [float(v) for v in vals] for k, vals in sweep.values.items()}
    (out / "checkpoints.json").write_text(json.dumps({"epoch": sweep.steps, **rows}, indent=1))
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8><title>specinterp checkpoints</title>"
        f"<style>{_CSS}</style><body><h1>Spectral quantities along training</h1>"
        "<p class=note>Built-in arraynet ReLU MLP 64-64-10 on scikit-learn digits, Adam, one "
        "checkpoint per epoch (epoch 0: initialisation).</p>"
    ]
    try:
        b64 = base64.b64encode(_figure(sweep)).decode()
        parts.append(f'<img src="data:image/png;base64,{b64}" alt="quantities against epoch">')
    except ImportError:
        parts.append("<p>figures: matplotlib is not installed (pip install 'specinterp[plot]')</p>")
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["epoch", *rows])
    body = "".join(
        "<tr>" + f"<td>{s}</td>" + "".join(f"<td>{rows[k][i]:.4g}</td>" for k in rows) + "</tr>"
        for i, s in enumerate(sweep.steps)
    )
    parts.append(f"<table><tr>{head}</tr>{body}</table></body></html>")
    path = out / "checkpoints.html"
    path.write_text("".join(parts))
    return path
