"""T4: the certified constant-attribution radius of piecewise-linear networks.

A network whose activations are piecewise linear (ReLU, leaky ReLU, max-pooling) is affine on
each activation region. The region of ``x`` is cut out by functions ``a_j`` that are affine on
it and vanish on its boundary — the pre-activation of every ReLU unit, the differences
``u_m − u_e`` inside every max-pooling window — so it contains the ball of radius
``ρ(x) = min_j |a_j(x)| / ‖∇a_j(x)‖₂`` (the distance to the nearest bounding hyperplane), and
the input Jacobian is exactly constant on that ball (:ref:`theory-t4`).

Two routes supply the ``a_j`` and their gradients:

* models with a product form (arraynet MLPs, Equinox ``eqx.nn.MLP``, Flax NNX
  ``nnx.Sequential`` MLPs): ``∇z_{l,j}`` are the rows of the partial products
  ``P_l = W_l D_{l−1} ⋯ D_1 W_1`` — no extra pass through the network;
* models with a ``region_boundaries(x, max_bytes)`` capability (torch ``nn.Sequential`` of
  Linear / Conv / ReLU / LeakyReLU / MaxPool / AvgPool layers): per-neuron input gradients by
  forward-mode differentiation, in chunks of samples within a memory budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from . import _xp
from ._guards import finite_result
from .capabilities import ProductForm, RegionBoundaries, offers, use
from .errors import ModelError
from .model import input_space

Array = Any

__all__ = ["certified_radius", "partial_products"]

#: default memory budget of the per-neuron input gradients (bytes)
DEFAULT_MAX_BYTES = 2 * 2**30


def partial_products(fac: Any, n: int, xp: Any) -> Iterator[Array]:
    """``P_l = W_l D_{l−1} ⋯ D_1 W_1`` for ``l = 1, …, L``, batched ``(N, n_l, d)``.

    Row ``j`` of ``P_l`` is ``g_{l,j} = ∂z_{l,j}/∂x`` (T4); ``P_L`` is the Jacobian (T3).
    """
    partial = xp.broadcast_to(fac.weights[0], (n, *fac.weights[0].shape))
    yield partial
    for w, d in zip(fac.weights[1:], fac.diagonals, strict=True):
        partial = w @ (d[:, :, None] * partial)
        yield partial


@finite_result("certified radius", allow_inf=True)
def certified_radius(
    model: Any,
    x: Array,
    *,
    return_direction: bool = False,
    max_bytes: int | None = None,
) -> Array | tuple[Array, Array]:
    """T4: radius ``ρ(x_i)`` within which the input Jacobian is exactly constant.

    ``ρ(x) = min_j |a_j(x)| / ‖∇a_j(x)‖₂`` over the functions ``a_j`` that bound the activation
    region of ``x`` (ReLU / leaky-ReLU pre-activations, max-pooling differences) with
    ``∇a_j ≠ 0``; ``J(x + δ) = J(x)`` and saliency maps are constant for ``‖δ‖₂ < ρ(x)``. A
    network without any such unit is affine: ``ρ = ∞``.

    Parameters
    ----------
    model
        An arraynet MLP (product form), or a torch ``nn.Sequential`` of Linear / Conv1d /
        Conv2d / ReLU / LeakyReLU / MaxPool1d / MaxPool2d / AvgPool / Flatten / eval-mode
        BatchNorm and Dropout layers.
    x : array ``(N, *input_shape)``
    return_direction : bool
        Also return, per sample, the unit vector ``(N, d)`` pointing to the nearest boundary:
        ``x + ρ(x) · direction`` lies on it (zero where ``ρ = ∞``).
    max_bytes : int, optional
        Memory budget for the per-neuron input gradients of the torch route (default 2 GiB);
        samples are processed in chunks that fit.

    Returns
    -------
    array ``(N,)`` (and ``(N, d)``) in the model's namespace.

    Raises
    ------
    ModelError
        If the model is not piecewise linear, or offers neither route.
    MemoryBudgetError
        If one sample's gradients do not fit in ``max_bytes``.

    """
    model, x = input_space(model, x)
    budget = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    if offers(model, RegionBoundaries):
        chunks: Iterable[list[tuple[Array, Array]]] = use(model, RegionBoundaries, x, budget)
    elif offers(model, ProductForm):
        chunks = [_product_form_boundaries(model, x)]
    else:
        raise ModelError(
            "certified_radius needs a piecewise-linear network: an arraynet, Equinox (eqx.nn.MLP) "
            "or Flax NNX (nnx.Sequential) MLP, or a torch nn.Sequential of Linear / Conv / ReLU "
            "/ LeakyReLU / MaxPool layers"
        )
    xp = model.xp
    radii, directions = [], []
    for boundaries in chunks:
        rho, direction = _nearest(boundaries, x, xp, model.dtype)
        radii.append(rho)
        directions.append(direction)
    rho = xp.concat(radii)
    return (rho, xp.concat(directions)) if return_direction else rho


def _product_form_boundaries(model: Any, x: Array) -> list[tuple[Array, Array]]:
    try:
        fac = use(model, ProductForm, x)
    except NotImplementedError as exc:
        raise ModelError(f"certified_radius needs an MLP: {exc}") from exc
    if not fac.piecewise_linear:
        raise ModelError(
            "certified_radius (T4) holds only for piecewise-linear activations (ReLU, leaky "
            "ReLU); this network has a smooth activation, whose Jacobian changes everywhere"
        )
    n = int(x.shape[0])
    # pre-activation l pairs with P_l; the last product (the Jacobian) has no pre-activation
    return list(zip(fac.preactivations, partial_products(fac, n, model.xp), strict=False))


def _nearest(
    boundaries: list[tuple[Array, Array]], x: Array, xp: Any, dtype: Any
) -> tuple[Array, Array]:
    """``min_j |a_j| / ‖g_j‖`` and the unit direction to that boundary, per sample."""
    n = int(boundaries[0][0].shape[0]) if boundaries else int(x.shape[0])
    d = int(boundaries[0][1].shape[-1]) if boundaries else 1
    dev = _xp.device(x)
    rho = xp.full((n,), xp.inf, dtype=dtype, device=dev)
    direction = xp.zeros((n, d), dtype=dtype, device=dev)
    for a, g in boundaries:
        norms = xp.linalg.vector_norm(g, axis=-1)  # ‖∇a_j‖ per sample and function
        ok = norms > 0
        ratio = xp.where(ok, xp.abs(a) / xp.where(ok, norms, xp.ones_like(norms)), xp.inf)
        j = xp.argmin(ratio, axis=-1)
        best = xp.take_along_axis(ratio, j[:, None], axis=-1)[:, 0]
        g_j = xp.take_along_axis(g, j[:, None, None], axis=1)[:, 0, :]
        a_j = xp.take_along_axis(a, j[:, None], axis=-1)[:, 0]
        norm_j = xp.take_along_axis(norms, j[:, None], axis=-1)[:, 0]
        # a(x + δ) = a + ∇a·δ reaches 0 along −sign(a) ∇a / ‖∇a‖
        unit = (
            -xp.sign(a_j)[:, None]
            * g_j
            / xp.where(norm_j > 0, norm_j, xp.ones_like(norm_j))[:, None]
        )
        closer = best < rho
        rho = xp.where(closer, best, rho)
        direction = xp.where(closer[:, None], unit, direction)
    return rho, direction
