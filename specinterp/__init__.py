"""specinterp: matrix-spectral stability and interpretability diagnostics for deep networks.

Reference implementation of the framework of Katende, "A Unified Matrix-Spectral Framework
for Stability and Interpretability in Deep Learning", arXiv:2602.01136 (2026), written once
against the Python array API so it runs on NumPy, PyTorch, JAX, CuPy and array-api-strict.
"""

from . import bounds, errors, rmt
from .spectra import (
    Spectrum,
    attribution_condition_number,
    condition_number,
    effective_rank,
    singular_values,
    spectral_entropy,
    stable_rank,
    typical_gain,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "Spectrum",
    "__version__",
    "attribution_condition_number",
    "bounds",
    "condition_number",
    "effective_rank",
    "errors",
    "rmt",
    "singular_values",
    "spectral_entropy",
    "stable_rank",
    "typical_gain",
]
