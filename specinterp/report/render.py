"""Writing a report: ``metrics.json`` (documented schema), ``index.html`` and ``report.md``.

The output folder is assembled in a temporary sibling folder and moved into place only when
every file is written, so a failure never leaves a half-written report that looks complete.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .analysis import ReportData
from .schema import METRICS_SCHEMA, metrics

__all__ = ["METRICS_SCHEMA", "metrics", "write_report"]  # the first two from .schema


def _table(rows: list[tuple[str, Any]]) -> str:
    def fmt(v: Any) -> str:
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:.4g}"
        return html.escape(str(v))

    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


_CSS = " ".join(
    """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}
th,td{padding:.25em .8em;border-bottom:1px solid #eee;text-align:left;
font-variant-numeric:tabular-nums}
th{font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.note{color:#666;font-size:.9em}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.4em .8em}
""".split()
)


def _html(rep: ReportData, data: dict[str, Any], figs: dict[str, bytes]) -> str:
    def img(name: str, alt: str) -> str:
        if name not in figs:
            return ""
        b64 = base64.b64encode(figs[name]).decode()
        return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}">'

    g = data["gmsi"]
    parts = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>specinterp report</title>"
        f"<style>{_CSS}</style><body><h1>specinterp report</h1>",
        _table(
            [
                ("model", rep.model),
                ("data", rep.data),
                ("samples", rep.num_samples),
                ("loss", rep.loss),
                ("accuracy", rep.accuracy),
                ("seed", rep.seed),
            ]
        ),
    ]
    if rep.missing:
        parts.append(f"<p class=warn>Missing: {html.escape('; '.join(rep.missing))}</p>")
    parts.append(
        "<h2>Global Matrix Stability Index</h2><p class=note>docs: theory §3, this library's "
        "definition: GMSI = max(s_J, s_θ, s_K, s_H), a gain — larger is less stable."
        "</p>"
    )
    parts.append(
        _table(
            [
                ("GMSI", g["value"]),
                ("binding component", g["binding"]),
                *[(f"s ({k})", v) for k, v in g["components"].items()],
                ("typical forward gain t_J", g["typical"]["forward"]),
                ("κ(K)", g["ntk_condition_number"]),
                ("κ₊(H)", g["hessian_condition_number"]),
                ("residual curvature dominates", g["residual_curvature_dominates"]),
                ("method", g["method"]),
            ]
        )
    )
    parts.append(img("gmsi", "GMSI components"))
    parts.append(
        "<h2>Weight spectra against Marchenko–Pastur</h2><p class=note>ESD of XXᵀ/n per "
        "layer, robust σ² fit, spikes beyond λ₊ plus a 3 Tracy–Widom-unit margin (red)."
        "</p>"
    )
    parts.append(
        _table(
            [
                (
                    f"{d['name']} {d['shape'][0]}×{d['shape'][1]}",
                    f"σ²={d['sigma2']:.3g}, λ₊={d['mp_upper_edge']:.3g}, "
                    f"λ_max={d['top_eigenvalue']:.3g}, spikes={len(d['spikes'])}, "
                    f"KS={d['ks_distance']:.3g}, srank={d['stable_rank']:.3g}",
                )
                for d in data["layers"]
            ]
        )
    )
    parts.append(img("weights", "weight ESDs"))
    parts.append("<h2>Input-Jacobian spectra</h2>")
    parts.append(
        _table(
            [
                (
                    k,
                    f"mean {v['mean']:.4g} · std {v['std']:.3g} · [{v['min']:.3g}, {v['max']:.3g}]"
                    if v["mean"] is not None
                    else None,
                )
                for k, v in data["jacobian"].items()
            ]
        )
    )
    parts.append(img("jacobian", "Jacobian spectra"))
    parts.append("<h2>NTK and Hessian</h2>")
    parts.append(
        _table(
            [
                ("NTK samples", data["ntk"]["samples"]),
                ("tr K", data["ntk"]["trace"]),
                (
                    "Hessian top eigenvalues",
                    ", ".join(
                        f"{v:.4g}±{r:.1g}"
                        for v, r in zip(rep.hessian_values, rep.hessian_residuals, strict=True)
                    ),
                ),
                ("Lanczos converged", rep.hessian_converged),
                ("Hessian-vector products", rep.hessian_matvecs),
            ]
        )
    )
    parts.append(img("curvature", "NTK eigenvalues, Hessian top-k and density"))
    parts.append("<h2>Attribution robustness</h2>")
    parts.append(_table(list(data["attribution"].items())))
    parts.append(img("attribution", "attribution maps"))
    parts.append(
        "<p class=note>Katende, A Unified Matrix-Spectral Framework for Stability and "
        "Interpretability in Deep Learning, arXiv:2602.01136 (2026). Generated by "
        "specinterp.</p></body></html>"
    )
    return "\n".join(p for p in parts if p)


def _markdown(data: dict[str, Any]) -> str:
    g = data["gmsi"]
    lines = [
        f"# specinterp report: {data['model']} on {data['data']}",
        "",
        f"- samples: {data['num_samples']}, loss: {data['loss']}, accuracy: {data['accuracy']}",
        f"- GMSI: {g['value']} (binding: {g['binding']}, method: {g['method']})",
        "",
        "| component | scale |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in g["components"].items()]
    lines += ["", "| Jacobian statistic | mean | std |", "|---|---|---|"]
    lines += [f"| {k} | {v['mean']} | {v['std']} |" for k, v in data["jacobian"].items()]
    lines += ["", "| attribution | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in data["attribution"].items()]
    return "\n".join(lines) + "\n"


def write_report(
    rep: ReportData, out: str | os.PathLike[str], fmt: str, figs: dict[str, bytes]
) -> Path:
    """Write the report into ``out`` atomically; returns the main file's path."""
    out = Path(out)
    parent = out.resolve().parent
    if not parent.is_dir():
        raise OSError(f"cannot write the report: folder {parent} does not exist")
    if out.exists() and not out.is_dir():
        raise OSError(f"cannot write the report: {out} exists and is not a folder")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=parent))
    except OSError as exc:
        raise OSError(f"cannot write the report into {parent}: {exc.strerror}") from exc
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the report from other users
    try:
        data = metrics(rep)
        (tmp / "metrics.json").write_text(json.dumps(data, indent=2, allow_nan=False))
        main = "metrics.json"
        if fmt == "html":
            (tmp / "index.html").write_text(_html(rep, data, figs))
            main = "index.html"
        elif fmt == "md":
            (tmp / "report.md").write_text(_markdown(data))
            main = "report.md"
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / main
