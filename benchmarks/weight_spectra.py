"""Weight spectra of a 110 M-parameter transformer: specinterp's ``model_layers`` vs WeightWatcher.

The model is BERT-base built from its config with random weights (``transformers``, no
download), float32, where the feed-forward matrices of every block (``intermediate.dense``,
``output.dense``) are redrawn with i.i.d. symmetric Pareto entries of tail index ``μ = 1.5``: the
ESD of such a matrix has a power-law tail of exponent ``1 + μ/2 = 1.75`` (Biroli, Bouchaud &
Potters 2007), a known truth for the fitted α. The other matrices are Gaussian (BERT's init),
whose Marchenko–Pastur ESD has no power-law tail at all.

Each tool runs in a fresh subprocess on the same model: wall time, the peak resident memory
above the model's (``ru_maxrss`` minus the resident size before the call), and the per-layer α.
specinterp's child also checks every layer's ``λ_max`` and stable rank against a float64
``eigvalsh`` of ``W Wᵀ / n``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

MU = 1.5
TRUE_ALPHA = 1 + MU / 2

CHILD = r"""
import json, logging, os, resource, sys, time, warnings
import numpy as np, torch, transformers
torch.set_num_threads(2)
logging.disable(logging.WARNING)
warnings.simplefilter("ignore")
tool, mu = sys.argv[1], float(sys.argv[2])
torch.manual_seed(0)
model = transformers.BertModel(transformers.BertConfig()).eval()
rng = np.random.default_rng(0)
heavy = set()
with torch.no_grad():
    for name, p in model.named_parameters():
        ffn = "intermediate.dense" in name or "output.dense" in name
        if p.ndim == 2 and ffn and "attention" not in name:
            w = (rng.pareto(mu, p.shape) + 1.0) * rng.choice([-1.0, 1.0], p.shape)
            p.copy_(torch.as_tensor(0.02 * w / np.median(np.abs(w)), dtype=p.dtype))
            heavy.add(name[: -len(".weight")])
num_params = sum(p.numel() for p in model.parameters())

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

out = {"params": num_params, "heavy": sorted(heavy)}
if tool.startswith("specinterp"):
    from specinterp import rmt
    import specinterp as si
    si.as_model(model)  # the adapter wraps without copying; warm the imports
    before = rss()
    t0 = time.perf_counter()
    kw = {} if tool == "specinterp" else {"num_bootstrap": 0, "randomize": False}
    table = rmt.model_layers(model, as_frame=False, **kw)
    out["seconds"] = time.perf_counter() - t0
    out["peak_extra_bytes"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                                  - before)
    params = dict(model.named_parameters())
    worst = 0.0
    for r in table:
        w = params[r["name"]].detach().double().numpy()
        x = w if w.shape[0] <= w.shape[1] else w.T
        lam = np.linalg.eigvalsh(x @ x.T / x.shape[1])
        worst = max(worst, abs(r["lambda_max"] / lam[-1] - 1),
                    abs(r["stable_rank"] / (lam.sum() / lam[-1]) - 1))
    out["dense_check_max_rel_diff"] = worst
    out["layers"] = {
        r["name"][: -len(".weight")]: [r["alpha"], r["alpha_lo"], r["alpha_hi"],
                                        bool(r["power_law_supported"]), r["alpha_status"]]
        for r in table
    }
else:
    import weightwatcher as ww
    names = [n for n, _ in model.named_modules()]
    before = rss()
    t0 = time.perf_counter()
    details = ww.WeightWatcher(model=model).analyze()
    out["seconds"] = time.perf_counter() - t0
    out["peak_extra_bytes"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                                  - before)
    out["layers"] = {names[int(i)]: [float(a), str(wr)] for i, a, wr in
                     zip(details["layer_id"], details["alpha"], details["warning"])}
print(json.dumps(out))
"""


def _child(tool: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, tool, str(MU)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(repeats: int = 1) -> list[dict[str, object]]:
    """Rows: a summary per tool, then α per layer for the first two blocks."""
    del repeats  # one run each: minutes per tool
    ours = _child("specinterp")
    point = _child("specinterp-point")  # the work WeightWatcher does: no CI, no shuffled refit
    try:
        theirs = _child("weightwatcher")
    except subprocess.CalledProcessError:  # not installed: pip install weightwatcher
        theirs = None
    heavy = set(ours["heavy"])
    rows: list[dict[str, object]] = []

    def summary(tool: str, res: dict, alpha: dict[str, float], extra: dict) -> None:
        h = np.array([alpha[n] for n in heavy if n in alpha])
        g = np.array([alpha[n] for n in alpha if n not in heavy])
        rows.append(
            {
                "case": "weight_spectra",
                "tool": tool,
                "params": res["params"],
                "layers": len(alpha),
                "seconds": res["seconds"],
                "peak_extra_MB": res["peak_extra_bytes"] / 2**20,
                f"heavy median |α−{TRUE_ALPHA}|": float(np.nanmedian(np.abs(h - TRUE_ALPHA))),
                "gaussian median α": float(np.nanmedian(g)),
                **extra,
            }
        )

    a_ours = {n: v[0] for n, v in ours["layers"].items()}
    cover = [v[1] <= TRUE_ALPHA <= v[2] for n, v in ours["layers"].items() if n in heavy]
    gauss_supported = [v[3] for n, v in ours["layers"].items() if n not in heavy]
    summary(
        "specinterp",
        ours,
        a_ours,
        {
            "heavy CI covers": f"{sum(cover)}/{len(cover)}",
            "gaussian flagged unsupported": (
                f"{gauss_supported.count(False)}/{len(gauss_supported)}"
            ),
            "dense check max rel diff": ours["dense_check_max_rel_diff"],
        },
    )
    summary(
        "specinterp, no CI / shuffle",
        point,
        {n: v[0] for n, v in point["layers"].items()},
        {},
    )
    if theirs is not None:
        a_ww = {n: v[0] for n, v in theirs["layers"].items()}
        warned = [v[1] not in ("", "nan") for n, v in theirs["layers"].items() if n not in heavy]
        summary(
            "weightwatcher",
            theirs,
            a_ww,
            {"gaussian flagged (warning)": f"{sum(warned)}/{len(warned)}"},
        )
        rows[-1]["time ratio WW / ours (full, point)"] = (
            f"{theirs['seconds'] / ours['seconds']:.3g}, {theirs['seconds'] / point['seconds']:.3g}"
        )
    for name, v in ours["layers"].items():
        if not (name.startswith("embeddings") or ".layer.0." in name):
            continue
        rows.append(
            {
                "case": "weight_spectra_layers",
                "layer": name,
                "entries": "Pareto μ=1.5" if name in heavy else "Gaussian",
                "α specinterp": v[0],
                "95% CI": f"[{v[1]:.3g}, {v[2]:.3g}]",
                "supported": v[3],
                "α WeightWatcher": None
                if theirs is None
                else theirs["layers"].get(name, [None])[0],
            }
        )
    return rows
