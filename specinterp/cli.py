"""The ``specinterp`` command.

``specinterp report`` trains the built-in MLP on scikit-learn's digits and prints its weight
spectra against Marchenko–Pastur and its per-sample input-Jacobian spectra; ``--json`` also
writes the numbers to a file. Errors end with a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specinterp",
        description="Matrix-spectral stability and interpretability diagnostics "
        "(arXiv:2602.01136).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rep = sub.add_parser(
        "report",
        help="analyse the built-in MLP on scikit-learn's digits",
        description="Train a ReLU MLP on scikit-learn's digits and report its weight spectra "
        "against Marchenko–Pastur and its per-sample input-Jacobian spectra.",
    )
    rep.add_argument("--seed", type=int, default=0, help="seed of split, init and controls")
    rep.add_argument("--samples", type=int, default=200, help="test images to analyse (≤ 359)")
    rep.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    return parser


def _to_json(result: Any) -> dict[str, Any]:
    layers = []
    for d, null in zip(result.layers, result.shuffled_layers, strict=True):
        layers.append({tag: _layer_json(x) for tag, x in (("trained", d), ("shuffled", null))})
    return {
        "model": "relu-mlp-64-128-64-10",
        "data": "sklearn.datasets.load_digits",
        "seed": result.seed,
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "layers": layers,
        "jacobian": {
            name: {"mean": m, "std": s, "min": lo, "max": hi}
            for name, m, s, lo, hi in result.jacobian.rows()
        },
    }


def _layer_json(d: Any) -> dict[str, Any]:
    return {
        "shape": list(d.shape),
        "ratio": d.law.ratio,
        "sigma2": d.law.sigma2,
        "mp_upper_edge": d.law.edges[1],
        "top_eigenvalue": d.top_eigenvalue,
        "spikes": [float(v) for v in d.spikes],
        "ks_distance": d.ks_distance,
        "stable_rank": d.stable_rank,
        "entropy": d.entropy,
        "normalized_entropy": d.normalized_entropy,
    }


def _write_json_atomically(path: str, payload: dict[str, Any]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"folder {folder} does not exist; create it or choose another --json path")
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``specinterp`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        from .report import run_digits_analysis
        from .report.tables import format_analysis

        result = run_digits_analysis(seed=args.seed, samples=args.samples)
        if args.json:
            _write_json_atomically(args.json, _to_json(result))
    except (ValueError, OSError, ImportError) as exc:
        print(f"specinterp: error: {exc}", file=sys.stderr)
        return 2
    print(format_analysis(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
