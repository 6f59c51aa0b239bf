"""Framework autodiff for user loss callables: output gradients and ``Λ dz`` products.

:class:`specinterp.losses.CallableLoss` calls these; they dispatch on the outputs' library and
differentiate ``Σ_i ℓ_i(z_i)`` (per-sample losses do not couple samples, so its Hessian is
block-diagonal with the blocks ``Λ_i``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from specinterp import _xp
from specinterp.errors import ModelError

Array = Any


def _library(z: Array) -> str:
    name = _xp.backend_name(_xp.namespace(z))
    if name not in ("torch", "jax"):
        raise ModelError(
            f"a loss callable is differentiated by its framework; outputs are {name} arrays, "
            "which have no automatic differentiation — use a built-in loss ('mse', "
            "'cross_entropy', 'bce_with_logits') or a torch / JAX model"
        )
    return name


def output_gradient(fn: Callable[[Array, Array], Array], z: Array, y: Array) -> Array:
    """``∂ℓ_i/∂z_i`` for every sample (shape of ``z``)."""
    if _library(z) == "torch":
        from torch.func import grad

        return grad(lambda zz: fn(zz, y).sum())(z)
    import jax

    return jax.grad(lambda zz: fn(zz, y).sum())(z)


def output_hvp(fn: Callable[[Array, Array], Array], z: Array, y: Array, dz: Array) -> Array:
    """``Λ_i dz_i`` for every sample.

    torch: reverse over reverse (``Λ`` is symmetric, so the pullback of the gradient is the
    product), as torch's losses have double backwards but not all a forward-mode rule for their
    backward (e.g. ``huber_loss``). JAX: forward over reverse.
    """
    if _library(z) == "torch":
        from torch.func import grad, vjp

        return vjp(grad(lambda zz: fn(zz, y).sum()), z)[1](dz)[0]
    import jax

    return jax.jvp(jax.grad(lambda zz: fn(zz, y).sum()), (z,), (dz,))[1]
