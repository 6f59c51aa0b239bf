"""Run every benchmark and print a table of medians and ratios (plus JSON with ``--json``)."""

from __future__ import annotations

import argparse
import json

from . import (
    eigsh_vs_arpack,
    hessian_peers,
    model_operators,
    scale,
    spectra_overhead,
    trace_peers,
)

CASES = {
    "spectra_overhead": spectra_overhead.run,
    "eigsh_vs_arpack": eigsh_vs_arpack.run,
    "model_operators": model_operators.run,
    "scale": scale.run,
    "hessian_peers": hessian_peers.run,
    "trace_peers": trace_peers.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("cases", nargs="*", default=list(CASES), help="cases to run")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    rows = []
    for case in args.cases:
        rows += CASES[case](repeats=args.repeats)
    for row in rows:
        print(
            "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            )
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
