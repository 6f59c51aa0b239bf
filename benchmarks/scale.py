"""Scale: Hessian top-k and SLQ of a model with ≥ 1 million parameters in bounded memory.

Each case runs in a fresh subprocess; the peak resident memory of the algorithm is the child's
``ru_maxrss`` minus its resident size just before the algorithm starts (model, data and one
warm-up HVP already in memory). The reference is the stated budget
``model + (k + steps) × p × 8 bytes`` (float64 Krylov vectors).
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, os, resource, sys, time
import numpy as np, torch
import specinterp as si
torch.set_num_threads(2)
widths, batch, k, steps, kind = json.loads(sys.argv[1])
torch.manual_seed(0)
layers = []
for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
    layers.append(torch.nn.Linear(a, b))
    if i < len(widths) - 2:
        layers.append(torch.nn.ReLU())
net = torch.nn.Sequential(*layers).double().eval()
x = torch.randn(batch, widths[0], dtype=torch.float64)
y = torch.randint(0, widths[-1], (batch,))
model = si.as_model(net)
p = model.num_params
op = si.hessian_operator(model, x, y, "cross_entropy")
op.matvec(torch.zeros(p, dtype=torch.float64))
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
t0 = time.perf_counter()
if kind == "eigsh":
    res = si.linalg.eigsh(op, k, tol=1e-3, seed=0)
    used = res.num_matvecs
else:
    res = si.linalg.spectral_density(op, num_probes=1, num_steps=steps, seed=0)
    used = res.num_matvecs
elapsed = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"p": p, "seconds": elapsed, "hvps": used,
                  "peak_extra_bytes": max(0, peak - before),
                  "model_bytes": p * 8}))
"""


def run(repeats: int = 1) -> list[dict[str, object]]:
    rows = []
    cases = [
        ([784, 256, 10], 256, 5, 20),
        ([784, 1024, 256, 10], 256, 5, 20),
        ([784, 1024, 256, 10], 64, 5, 20),
        ([784, 1024, 256, 10], 256, 5, 90),
    ]
    for widths, batch, k, steps in cases:
        for kind in ("eigsh", "slq"):
            if kind == "eigsh" and steps != 20:
                continue
            out = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps([widths, batch, k, steps, kind])],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            vectors = (max(2 * k + 1, 20) + 1) if kind == "eigsh" else steps
            budget = r["model_bytes"] + (k + steps) * r["p"] * 8
            rows.append(
                {
                    "case": f"hessian_{kind}",
                    "widths": "-".join(map(str, widths)),
                    "batch": batch,
                    "params": r["p"],
                    "hvps": r["hvps"],
                    "seconds": round(r["seconds"], 2),
                    "peak_extra_MiB": round(r["peak_extra_bytes"] / 2**20, 1),
                    "budget_MiB": round(budget / 2**20, 1),
                    "ratio_to_budget": round(r["peak_extra_bytes"] / budget, 2),
                    "krylov_vectors": vectors,
                }
            )
    return rows
