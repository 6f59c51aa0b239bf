"""Run the benchmarks and print one table of medians and ratios per case (JSON with ``--json``).

``python -m benchmarks`` runs every group; ``python -m benchmarks hessian_peers trace_peers``
runs those groups. Peers come from ``benchmarks/requirements.txt``; a missing peer drops its
rows. Groups and the issue's cases they measure:

* ``hessian_peers``  — 1 Hessian top-5 eigenvalues (PyHessian, curvlinops + ARPACK)
* ``hessian_density`` — 3 Hessian SLQ density (PyHessian)
* ``ggn_peers``      — 1b GGN top-5 eigenvalues of the MLPs and CNNs (curvlinops + ARPACK)
* ``trace_peers``    — 2 Hessian trace at 1 % relative SE (PyHessian, curvlinops)
* ``model_operators`` — 4 NTK, 5 per-sample input-Jacobian spectra, one HVP (torch.func, JAX,
  curvlinops)
* ``spectra_overhead`` — 6 dense statistics vs raw ``svdvals``
* ``eigsh_vs_arpack`` — the Lanczos engine vs ARPACK on explicit operators
* ``multiplicity`` — repeated and clustered eigenvalues: right multiset and products vs ARPACK
* ``scale`` — million-parameter Hessian top-k / SLQ: time and peak memory
* ``full_data`` — Hessian top-5 over all of MNIST-5k through a loader (PyHessian, curvlinops)
  and on a two-worker Dask cluster
* ``structured_ntk`` — 7 the layer-wise NTK of a 1.86 M-parameter MLP vs the Jacobian
  contraction recipes (torch.func, JAX, arraynet; time, peak memory, equality), and the
  time-scaling table (NTK and Hessian top-5 vs batch and width)
* ``user_models`` — 8 ``gmsi`` on a ResNet-style model with its defaults, 8b ``gmsi`` above
  ``dense_limit`` (today's routes vs the previous ones), 8c ``gmsi`` on a GPT-2-style language
  model (and the exact per-sample blocks it no longer forms), 9 JAX dense Hessian vs
  ``jax.jit(jax.hessian)`` (first call included)
* ``host_threads`` — Hessian top-5 / top-20 with and without one host BLAS thread for the
  solver's small problems, full vs partial reorthogonalisation, curvlinops + ARPACK
* ``weight_spectra`` — ``model_layers`` of a 110 M-parameter transformer vs WeightWatcher:
  time, peak memory, α against a known heavy-tailed truth
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from itertools import groupby

from . import (
    eigsh_vs_arpack,
    full_data,
    ggn_peers,
    hessian_peers,
    host_threads,
    language_model,
    model_operators,
    multiplicity,
    scale,
    spectra_overhead,
    structured_ntk,
    trace_peers,
    user_models,
    weight_spectra,
)

CASES = {
    "hessian_peers": hessian_peers.run,
    "hessian_density": hessian_peers.run_density,
    "ggn_peers": ggn_peers.run,
    "trace_peers": trace_peers.run,
    "model_operators": model_operators.run,
    "spectra_overhead": spectra_overhead.run,
    "eigsh_vs_arpack": eigsh_vs_arpack.run,
    "multiplicity": multiplicity.run,
    "scale": scale.run,
    "language_model": language_model.run,
    "weight_spectra": weight_spectra.run,
    "full_data": full_data.run,
    "structured_ntk": structured_ntk.run,
    "user_models": user_models.run,
    "host_threads": host_threads.run,
}


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def print_table(rows: list[dict[str, object]]) -> None:
    """One aligned table per ``case`` (columns: every key its rows use, in first-seen order)."""
    for case, group in groupby(rows, key=lambda r: r.get("case", "")):
        group = list(group)
        cols = list(dict.fromkeys(k for r in group for k in r if k != "case"))
        cells = [[_cell(r.get(k)) for k in cols] for r in group]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        print(f"\n## {case}")
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
        for row in cells:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("cases", nargs="*", default=list(CASES), choices=[[], *CASES])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per candidate")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    t0 = time.perf_counter()
    for case in args.cases:
        kwargs = {} if args.repeats is None else {"repeats": args.repeats}
        new = CASES[case](**kwargs)
        print_table(new)
        rows += new
    meta = {"machine": platform.platform(), "python": platform.python_version()}
    meta["total_s"] = round(time.perf_counter() - t0, 1)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
