"""Independent float64 reference implementations of theory §1, written from the definitions.

They work from an exactly known spectrum (or NumPy's SVD) with plain NumPy loops, sharing no
code with the library.
"""

from __future__ import annotations

import math

import numpy as np


def svals(a: np.ndarray) -> np.ndarray:
    return np.linalg.svd(a, compute_uv=False)


def entropy_of(weights: np.ndarray) -> float:
    p = weights / weights.sum()
    return float(-sum(pi * math.log(pi) for pi in p if pi > 0))


def stats(a: np.ndarray) -> dict[str, float]:
    m, n = a.shape
    s = svals(a)
    r = min(m, n)
    fro2 = float(np.sum(s**2))
    tol = max(m, n) * np.finfo(np.float64).eps * s[0]
    h = entropy_of(s**2)
    return {
        "sigma1": float(s[0]),
        "fro": math.sqrt(fro2),
        "entropy": h,
        "entropy_rv": entropy_of(s),
        "normalized_entropy": h / math.log(r) if r >= 2 else float("nan"),
        "effective_rank": math.exp(h),
        "stable_rank": fro2 / s[0] ** 2,
        "condition_number": float(s[0] / s[-1]) if s[-1] > tol else math.inf,
        "typical_gain": math.sqrt(fro2 / n),
        "attribution_condition_number": s[0] / math.sqrt(fro2 / r),
        "rank": int(np.sum(s > tol)),
    }
