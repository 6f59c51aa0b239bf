"""Interleaved timing: candidates run in turn, repeat after repeat, so drift hits all alike.

A full garbage collection runs before every timed call (outside the timing): reference cycles
a previous candidate left behind (PyHessian's ``backward(create_graph=True)`` ties parameters to
their gradient graphs) are otherwise collected inside whichever call comes next.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], *, repeats: int = 15, warmup: int = 2
) -> dict[str, float]:
    """Median wall time in seconds of each candidate, measured in alternation."""
    runs = interleaved_runs(candidates, repeats=repeats, warmup=warmup)
    return {name: secs for name, (secs, _) in runs.items()}


def interleaved_runs(
    candidates: dict[str, Callable[[], Any]], *, repeats: int = 3, warmup: int = 0
) -> dict[str, tuple[float, Any]]:
    """``(median seconds, last result)`` of each candidate, measured in alternation."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    last: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in candidates.items():
            gc.collect()
            t0 = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(ts), last[name]) for name, ts in times.items()}


def run_child(code: str, payload: object) -> dict:
    """Run ``python -c code json(payload)`` from the repository root; its last stdout line as JSON.

    A fresh process per measurement: its peak resident memory is its own. A non-zero exit
    raises with the end of its stderr.
    """
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(payload)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:] or f"exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
