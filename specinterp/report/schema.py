"""The report's numbers: the JSON schema of ``metrics.json`` and the dict that follows it.

The HTML page and the Markdown summary (:mod:`specinterp.report.render`) are written from this
dict, so every number a reader sees is one the schema defines.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .analysis import ReportData

__all__ = ["METRICS_SCHEMA", "metrics"]

_NUM = {"type": ["number", "null"]}
_STATS = {
    "type": "object",
    "required": ["mean", "std", "min", "max"],
    "properties": {k: _NUM for k in ("mean", "std", "min", "max")},
}

#: JSON schema of ``metrics.json`` (``null`` stands for an infinite or undefined number).
METRICS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "specinterp report metrics",
    "type": "object",
    "required": [
        "schema_version",
        "model",
        "data",
        "seed",
        "num_samples",
        "loss",
        "accuracy",
        "layers",
        "jacobian",
        "ntk",
        "hessian",
        "gmsi",
        "attribution",
        "missing",
    ],
    "properties": {
        "schema_version": {"const": 1},
        "model": {"type": "string"},
        "data": {"type": "string"},
        "seed": {"type": "integer"},
        "num_samples": {"type": "integer", "minimum": 1},
        "loss": {"enum": ["mse", "cross_entropy"]},
        "accuracy": _NUM,
        "layers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "shape",
                    "ratio",
                    "sigma2",
                    "mp_upper_edge",
                    "top_eigenvalue",
                    "spikes",
                    "ks_distance",
                    "stable_rank",
                    "entropy",
                    "normalized_entropy",
                ],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                    "spikes": {"type": "array", "items": {"type": "number"}},
                    **{
                        k: _NUM
                        for k in (
                            "ratio",
                            "sigma2",
                            "mp_upper_edge",
                            "top_eigenvalue",
                            "ks_distance",
                            "stable_rank",
                            "entropy",
                            "normalized_entropy",
                        )
                    },
                },
            },
        },
        "jacobian": {"type": "object", "additionalProperties": _STATS},
        "ntk": {
            "type": "object",
            "required": ["samples", "eigenvalues", "trace"],
            "properties": {
                "samples": {"type": "integer"},
                "eigenvalues": {"type": "array", "items": _NUM},
                "trace": _NUM,
            },
        },
        "hessian": {
            "type": "object",
            "required": ["top_eigenvalues", "residuals", "converged", "num_matvecs"],
            "properties": {
                "top_eigenvalues": {"type": "array", "items": _NUM},
                "residuals": {"type": "array", "items": _NUM},
                "converged": {"type": "boolean"},
                "num_matvecs": {"type": "integer"},
            },
        },
        "gmsi": {
            "type": "object",
            "required": [
                "value",
                "components",
                "binding",
                "typical",
                "entropies",
                "ntk_condition_number",
                "hessian_condition_number",
                "residual_curvature_dominates",
                "beta",
                "method",
            ],
            "properties": {
                "value": _NUM,
                "components": {"type": "object", "additionalProperties": _NUM},
                "binding": {"type": "string"},
                "method": {"enum": ["dense", "matrix-free"]},
                "residual_curvature_dominates": {"type": "boolean"},
            },
        },
        "attribution": {"type": "object"},
        "missing": {"type": "array", "items": {"type": "string"}},
    },
}


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
        )
    g = rep.gmsi
    return {
        "schema_version": 1,
        "model": rep.model,
        "data": rep.data,
        "seed": rep.seed,
        "num_samples": rep.num_samples,
        "loss": rep.loss,
        "accuracy": rep.accuracy,
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
            }
            for name, d, _ in rep.layers
        ],
        "jacobian": stats,
        "ntk": {
            "samples": rep.ntk_samples,
            "eigenvalues": [_num(v) for v in rep.ntk_eigenvalues[:50]],
            "trace": _num(np.sum(rep.ntk_eigenvalues)),
        },
        "hessian": {
            "top_eigenvalues": [_num(v) for v in rep.hessian_values],
            "residuals": [_num(v) for v in rep.hessian_residuals],
            "converged": bool(rep.hessian_converged),
            "num_matvecs": int(rep.hessian_matvecs),
        },
        "gmsi": {
            "value": _num(g.value),
            "components": {k: _num(v) for k, v in g.components.items()},
            "binding": g.binding,
            "typical": {k: _num(v) for k, v in g.typical.items()},
            "entropies": {k: _num(v) for k, v in g.entropies.items()},
            "ntk_condition_number": _num(g.ntk_condition_number),
            "hessian_condition_number": _num(g.hessian_condition_number),
            "residual_curvature_dominates": g.residual_curvature_dominates,
            "beta": _num(g.beta),
            "method": g.method,
        },
        "attribution": {
            k: (_num(v) if isinstance(v, float | int) and not isinstance(v, bool) else v)
            for k, v in rep.attribution.items()
        },
        "missing": list(rep.missing),
    }
