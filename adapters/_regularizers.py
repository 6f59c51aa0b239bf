"""The framework behind :mod:`specinterp.regularizers`, chosen by the namespace of the batch."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from specinterp import _xp
from specinterp.errors import ModelError

__all__ = ["implementation"]


def implementation(x: Any) -> Any:
    """The regulariser functions of the framework of ``x``, with ``rng`` translated."""
    if not _xp.is_array(x):
        raise TypeError(f"x must be a torch tensor or a JAX array; got {type(x).__name__}")
    name = _xp.backend_name(_xp.namespace(x))
    if name == "torch":
        return SimpleNamespace(
            jacobian_frobenius=lambda fn, x, num_projections, rng: _torch().jacobian_frobenius(
                fn, x, num_projections=num_projections, generator=_torch_generator(rng, x)
            ),
            jacobian_spectral_norm=lambda fn, x, num_iters, rng: _torch().jacobian_spectral_norm(
                fn, x, num_iters=num_iters, generator=_torch_generator(rng, x)
            ),
            jacobian_entropy=lambda fn, x: _torch().jacobian_entropy(fn, x),
        )
    if name == "jax":
        from . import jax_regularizers as jreg

        return SimpleNamespace(
            jacobian_frobenius=lambda fn, x, num_projections, rng: jreg.jacobian_frobenius(
                fn, x, _jax_key(rng), num_projections
            ),
            jacobian_spectral_norm=lambda fn, x, num_iters, rng: jreg.jacobian_spectral_norm(
                fn, x, _jax_key(rng), num_iters
            ),
            jacobian_entropy=jreg.jacobian_entropy,
        )
    raise ModelError(
        f"spectral regularisers differentiate through the training framework; x is a {name} "
        "array. Use torch or JAX, or train an arraynet network with "
        "arraynet.train(..., jacobian_penalty=λ), which is regulariser (a)"
    )


def _torch() -> Any:
    from . import torch_regularizers

    return torch_regularizers


def _torch_generator(rng: Any, x: Any) -> Any:
    import torch

    if rng is None or isinstance(rng, torch.Generator):
        return rng
    if isinstance(rng, int):
        return torch.Generator(device=x.device).manual_seed(rng)
    raise TypeError(f"rng must be a torch.Generator, an int seed or None; got {type(rng).__name__}")


def _jax_key(rng: Any) -> Any:
    import jax

    if rng is None:
        raise ValueError(
            "JAX has no global random state: pass rng=jax.random.key(seed) (split it between "
            "training steps), or an int seed"
        )
    if isinstance(rng, int):
        return jax.random.key(rng)
    return rng
