"""Overhead of specinterp's validated statistics over a raw ``svdvals`` (issue: foundation).

Case 6, at two sizes: a batch of 512 matrices 10×784 (per-sample MNIST logit Jacobians) and
of 256 matrices 10×3072 (CIFAR), in float64 and float32, on NumPy and PyTorch. Peer:
``xp.linalg.svdvals`` alone (what a user would write by hand). Candidates:
``spectral_entropy`` (validation + SVD + entropy) and ``Spectrum.from_matrix`` followed by all
eight §1 statistics.
"""

from __future__ import annotations

import numpy as np

import specinterp as si

from ._timing import interleaved_medians


def _namespaces():
    import array_api_compat.numpy as xnp

    yield "numpy", xnp, lambda a, dt: np.asarray(a, dtype=dt)
    try:
        import array_api_compat.torch as xt
        import torch
    except ImportError:
        return
    yield "torch", xt, lambda a, dt: torch.as_tensor(a, dtype=getattr(torch, np.dtype(dt).name))


def _all_stats(a):
    s = si.Spectrum.from_matrix(a)
    return (
        s.entropy(),
        s.entropy(normalized=True),
        s.effective_rank(),
        s.stable_rank(),
        s.condition_number(),
        s.typical_gain(),
        s.attribution_condition_number(),
        s.operator_norm(),
    )


def run(repeats: int = 15) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    rows = []
    for shape, name, xp, convert in (
        (shape, *ns) for shape in ((512, 10, 784), (256, 10, 3072)) for ns in _namespaces()
    ):
        base = rng.standard_normal(shape)
        for dtype in (np.float64, np.float32):
            a = convert(base, dtype)
            med = interleaved_medians(
                {
                    "svdvals": lambda a=a, xp=xp: xp.linalg.svdvals(a),
                    "spectral_entropy": lambda a=a: si.spectral_entropy(a),
                    "all_stats": lambda a=a: _all_stats(a),
                },
                repeats=repeats,
            )
            rows.append(
                {
                    "case": "6 dense statistics",
                    "batch": "×".join(map(str, shape)),
                    "backend": name,
                    "dtype": np.dtype(dtype).name,
                    "svdvals_s": med["svdvals"],
                    "spectral_entropy_s": med["spectral_entropy"],
                    "all_stats_s": med["all_stats"],
                    "entropy_overhead": med["spectral_entropy"] / med["svdvals"] - 1,
                    "all_stats_overhead": med["all_stats"] / med["svdvals"] - 1,
                }
            )
    return rows
