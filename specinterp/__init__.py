"""specinterp: matrix-spectral stability and interpretability diagnostics for deep networks.

Reference implementation of the framework of Katende, "A Unified Matrix-Spectral Framework
for Stability and Interpretability in Deep Learning", arXiv:2602.01136 (2026), written once
against the Python array API so it runs on NumPy, PyTorch, JAX, CuPy and array-api-strict.
"""

from . import attribution, bounds, datasets, errors, linalg, losses, regularizers, rmt, views
from .data_spread import BatchSpread, curvature_spread
from .diagnostics import JacobianSpectra, LayerGains, jacobian_spectra, layer_gains
from .model import Model, as_model
from .operators import (
    ggn,
    ggn_operator,
    hessian,
    hessian_operator,
    input_jacobian,
    input_jacobian_operator,
    ntk,
    ntk_operator,
    param_jacobian,
    param_jacobian_operator,
)
from .radius import certified_radius
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
from .stability import StabilityReport, algorithmic_stability
from .stability_index import GMSIInputs, GMSIResult, gmsi
from .sweep import sweep

__version__ = "0.1.0.dev0"

__all__ = [
    "BatchSpread",
    "GMSIInputs",
    "GMSIResult",
    "JacobianSpectra",
    "LayerGains",
    "Model",
    "Spectrum",
    "StabilityReport",
    "__version__",
    "algorithmic_stability",
    "as_model",
    "attribution",
    "attribution_condition_number",
    "bounds",
    "certified_radius",
    "condition_number",
    "curvature_spread",
    "datasets",
    "effective_rank",
    "errors",
    "ggn",
    "ggn_operator",
    "gmsi",
    "hessian",
    "hessian_operator",
    "input_jacobian",
    "input_jacobian_operator",
    "jacobian_spectra",
    "layer_gains",
    "linalg",
    "losses",
    "ntk",
    "ntk_operator",
    "param_jacobian",
    "param_jacobian_operator",
    "regularizers",
    "rmt",
    "singular_values",
    "spectral_entropy",
    "stable_rank",
    "sweep",
    "typical_gain",
    "views",
]
