"""Model-level stability diagnostics (SPEC §2 T4, §3).

This module starts with the certified constant-attribution radius of piecewise-linear
networks; the GMSI and per-sample Jacobian tables build on the same operators.
"""

from __future__ import annotations

from typing import Any

from . import _xp
from .errors import ModelError
from .model import as_model

Array = Any

__all__ = ["certified_radius"]


def certified_radius(model: Any, x: Array) -> Array:
    """T4: radius ``ρ(x_i)`` within which the input Jacobian is exactly constant.

    For a piecewise-linear network (ReLU, leaky ReLU), every pre-activation ``z_{l,j}`` is
    affine in ``x`` inside the activation region of ``x``, with gradient ``g_{l,j}(x) =
    ∂z_{l,j}/∂x``; the region contains the ball of radius
    ``ρ(x) = min_{l<L, j: g≠0} |z_{l,j}(x)| / ‖g_{l,j}(x)‖₂`` (the distance to the nearest
    bounding hyperplane), so ``J(x + δ) = J(x)`` and saliency maps are constant for
    ``‖δ‖₂ < ρ(x)``. Returns ``(N,)`` in the model's namespace.

    Raises
    ------
    ModelError
        If the model has no product form with pre-activations, or is not piecewise linear.

    """
    model = as_model(model)
    if not hasattr(model, "layer_factors"):
        raise ModelError(
            "certified_radius needs a model with a product form and pre-activations "
            "(an arraynet MLP); this adapter does not provide layer_factors"
        )
    try:
        fac = model.layer_factors(x)
    except NotImplementedError as exc:
        raise ModelError(f"certified_radius needs an MLP: {exc}") from exc
    if not fac.piecewise_linear:
        raise ModelError(
            "certified_radius (T4) holds only for piecewise-linear activations (ReLU, leaky "
            "ReLU); this network has a smooth activation, whose Jacobian changes everywhere"
        )
    xp = model.xp
    n = int(x.shape[0])
    partial = xp.broadcast_to(fac.weights[0], (n, *fac.weights[0].shape))
    radius = xp.full((n,), xp.inf, dtype=model.dtype, device=_xp.device(x))
    for layer, z in enumerate(fac.preactivations):
        norms = xp.linalg.vector_norm(partial, axis=-1)  # ‖g_{l,j}‖ per sample and neuron
        ratio = xp.where(norms > 0, xp.abs(z) / xp.where(norms > 0, norms, 1.0), xp.inf)
        radius = xp.minimum(radius, xp.min(ratio, axis=-1))
        partial = fac.weights[layer + 1] @ (fac.diagonals[layer][:, :, None] * partial)
    return radius
