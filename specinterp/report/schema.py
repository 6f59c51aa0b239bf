"""The report's numbers, defined once: fields, the JSON schema, the dict, the table rows.

Each section is a tuple of :class:`Field` (key, label, kind). The JSON schema of
``metrics.json`` is built from them, :func:`metrics` fills them from the analysis, and the HTML
page and the Markdown summary (:mod:`specinterp.report.render`) print their tables with
:func:`rows` — so every number a reader sees is one the schema defines, under one label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model_spectra import tail_supported
from .analysis import ReportData

__all__ = [
    "GMSI",
    "HESSIAN",
    "LAYER",
    "METRICS_SCHEMA",
    "NTK",
    "SUMMARY",
    "Field",
    "metrics",
    "rows",
]

_NUM = {"type": ["number", "null"]}
_KINDS: dict[str, dict[str, Any]] = {
    "number": _NUM,
    "integer": {"type": "integer"},
    "count": {"type": "integer", "minimum": 1},
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "numbers": {"type": "array", "items": _NUM},
    "named numbers": {"type": "object", "additionalProperties": _NUM},
    "shape": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    "stats": {
        "type": "object",
        "required": ["mean", "std", "min", "max"],
        "properties": {
            **{k: _NUM for k in ("mean", "std", "min", "max")},
            "count": {"type": "integer", "minimum": 0},  # samples where the value is finite
        },
    },
}


@dataclass(frozen=True)
class Field:
    """One number (or group of numbers) of the report.

    ``key`` is its name in ``metrics.json``, ``label`` what a reader sees in the HTML and
    Markdown tables, ``kind`` its JSON kind (or ``schema`` an explicit JSON schema).
    """

    key: str
    label: str
    kind: str
    schema: dict[str, Any] | None = None
    shown: bool = True

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the field's value."""
        return self.schema if self.schema is not None else _KINDS[self.kind]


def _section(fields: tuple[Field, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [f.key for f in fields],
        "properties": {f.key: f.json_schema() for f in fields},
    }


#: The report's sections, each an ordered tuple of fields: the one definition from which the
#: JSON schema, the HTML tables and the Markdown summary are produced.
SUMMARY = (
    Field("model", "model", "string"),
    Field("data", "data", "string"),
    Field("num_samples", "samples", "count"),
    Field("loss", "loss", "string", {"enum": ["mse", "cross_entropy", "bce_with_logits"]}),
    Field("accuracy", "accuracy", "number"),
    Field("seed", "seed", "integer"),
)
GMSI = (
    Field("value", "GMSI", "number"),
    Field("binding", "binding component", "string"),
    Field("components", "s", "named numbers"),
    Field("typical", "typical gain", "named numbers"),
    Field("entropies", "entropy", "named numbers"),
    Field("ntk_condition_number", "κ(K)", "number"),
    Field("hessian_condition_number", "κ₊(H)", "number"),
    Field("residual_curvature_dominates", "residual curvature dominates", "boolean"),
    Field("beta", "β_ℓ = max λ_max(Λ_i)", "number"),
    Field("method", "method", "string", {"enum": ["dense", "matrix-free"]}),
)
LAYER = (
    Field("name", "layer", "string"),
    Field("shape", "shape", "shape"),
    Field("ratio", "q = m/n", "number"),
    Field("sigma2", "σ²", "number"),
    Field("mp_upper_edge", "λ₊", "number"),
    Field("top_eigenvalue", "λ_max", "number"),
    Field("spikes", "spikes", "numbers"),
    Field("ks_distance", "KS", "number"),
    Field("stable_rank", "srank", "number"),
    Field("entropy", "H", "number"),
    Field("normalized_entropy", "H / log r", "number"),
    Field("alpha", "α", "number"),
    Field("alpha_lo", "α low", "number"),
    Field("alpha_hi", "α high", "number"),
    Field("alpha_status", "α fit", "string"),
    Field("power_law_supported", "power law supported", "boolean"),
)
NTK = (
    Field("samples", "NTK samples", "integer"),
    Field("eigenvalues", "NTK leading eigenvalues", "numbers", shown=False),
    Field("trace", "tr K", "number"),
)
HESSIAN = (
    Field("samples", "Hessian: samples in the loss", "integer"),
    Field("batches", "Hessian: batches (≤ 128 samples each)", "integer"),
    Field("top_eigenvalues", "Hessian top eigenvalues", "numbers"),
    Field("batch_spread", "± across batches (sd of one batch's value)", "numbers"),
    Field("residuals", "residual bounds (T9)", "numbers"),
    Field("converged", "Lanczos converged", "boolean"),
    Field("num_matvecs", "Hessian-vector products", "integer"),
    Field("density_probes", "density: SLQ probes", "integer"),
    Field("density_steps", "density: Lanczos steps per probe", "integer"),
)

#: JSON schema of ``metrics.json`` (``null`` stands for an infinite or undefined number).
METRICS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "specinterp report metrics",
    "type": "object",
    "required": [
        "schema_version",
        *(f.key for f in SUMMARY),
        "layers",
        "jacobian",
        "ntk",
        "hessian",
        "gmsi",
        "attribution",
        "missing",
    ],
    "properties": {
        "schema_version": {"const": 3},
        **{f.key: f.json_schema() for f in SUMMARY},
        "layers": {"type": "array", "items": _section(LAYER)},
        "jacobian": {"type": "object", "additionalProperties": _KINDS["stats"]},
        "ntk": _section(NTK),
        "hessian": _section(HESSIAN),
        "gmsi": _section(GMSI),
        "attribution": {"type": "object"},
        "missing": {"type": "array", "items": {"type": "string"}},
    },
}


def rows(fields: tuple[Field, ...], values: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(label, value)`` rows of a section for the HTML and Markdown tables.

    A group of named numbers becomes one row per name (``s (forward)``); a list of numbers one
    row, its values joined.
    """
    out: list[tuple[str, Any]] = []
    for f in fields:
        if not f.shown:
            continue
        v = values[f.key]
        if f.kind == "named numbers":
            out += [(f"{f.label} ({k})", x) for k, x in v.items()]
        elif f.kind in ("numbers", "shape"):
            out.append((f.label, ", ".join(cell(x) for x in v) if v else "—"))
        else:
            out.append((f.label, v))
    return out


def cell(v: Any) -> str:
    """A table cell: ``—`` for a missing number, floats to four significant digits."""
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _tail_fields(fit: Any, diag: Any) -> dict[str, Any]:
    """The power-law columns of a layer (``"not computed"`` when the fit is absent)."""
    if fit is None:
        return dict.fromkeys(("alpha", "alpha_lo", "alpha_hi"), None) | {
            "alpha_status": "not computed",
            "power_law_supported": False,
        }
    return {
        "alpha": _num(fit.alpha),
        "alpha_lo": _num(fit.alpha_ci[0]),
        "alpha_hi": _num(fit.alpha_ci[1]),
        "alpha_status": fit.status,
        "power_law_supported": tail_supported(fit, diag),
    }


def _json(v: Any) -> Any:
    """A GMSI attribute as JSON: numbers finite or ``null``, groups of numbers likewise."""
    if isinstance(v, dict):
        return {k: _num(x) for k, x in v.items()}
    if isinstance(v, float):
        return _num(v)
    return v


def _num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def metrics(rep: ReportData) -> dict[str, Any]:
    """The report's numbers as a JSON-ready dict following :data:`METRICS_SCHEMA`."""
    js = rep.jacobian
    stats = {}
    for name in (
        "operator_norm",
        "entropy",
        "normalized_entropy",
        "effective_rank",
        "stable_rank",
        "condition_number",
        "attribution_condition_number",
        "typical_gain",
    ):
        v = np.asarray(getattr(js, name), dtype=float)
        f = v[np.isfinite(v)]
        stats[name] = (
            {
                k: _num(fn(f))
                for k, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))
            }
            if f.size
            else dict.fromkeys(("mean", "std", "min", "max"))
        ) | {"count": int(f.size)}  # over the samples where it is finite (a zero Jacobian: NaN)
    g = rep.gmsi
    return {
        "schema_version": 3,
        **{f.key: getattr(rep, f.key) for f in SUMMARY},
        "layers": [
            {
                "name": name,
                "shape": list(d.shape),
                "ratio": d.law.ratio,
                "sigma2": d.law.sigma2,
                "mp_upper_edge": d.law.edges[1],
                "top_eigenvalue": d.top_eigenvalue,
                "spikes": [float(s) for s in d.spikes],
                "ks_distance": d.ks_distance,
                "stable_rank": d.stable_rank,
                "entropy": d.entropy,
                "normalized_entropy": d.normalized_entropy,
                **_tail_fields(rep.tails[k] if k < len(rep.tails) else None, d),
            }
            for k, (name, d, _) in enumerate(rep.layers)
        ],
        "jacobian": stats,
        "ntk": {
            "samples": rep.ntk_samples,
            "eigenvalues": [_num(v) for v in rep.ntk_eigenvalues[:50]],
            "trace": _num(np.sum(rep.ntk_eigenvalues)),
        },
        "hessian": {
            "samples": int(rep.hessian_samples),
            "batches": int(rep.hessian_batches),
            "top_eigenvalues": [_num(v) for v in rep.hessian_values],
            "batch_spread": [_num(v) for v in rep.hessian_batch_spread],
            "residuals": [_num(v) for v in rep.hessian_residuals],
            "converged": bool(rep.hessian_converged),
            "num_matvecs": int(rep.hessian_matvecs),
            "density_probes": int(rep.density_probes),
            "density_steps": int(rep.density_steps),
        },
        "gmsi": {f.key: _json(getattr(g, f.key)) for f in GMSI},
        "attribution": {
            k: (_num(v) if isinstance(v, float | int) and not isinstance(v, bool) else v)
            for k, v in rep.attribution.items()
        },
        "missing": list(rep.missing),
    }
