"""Spectral regularisers for training PyTorch models (:ref:`theory-regularisers`).

Each function takes a batch-first callable ``fn(x) -> (N, C)`` (a module, or a closure over a
module's parameters) and returns a differentiable scalar to add to the training loss:

(a) :func:`jacobian_frobenius` — ``E_v ‖J v‖²`` for random unit ``v ∈ R^d``, an unbiased
    estimate of ``‖J‖_F² / d`` (Hoffman, Roberts & Yaida 2019), averaged over the batch;
(b) :func:`jacobian_spectral_norm` — ``σ_1(J)²`` by a few power-iteration steps
    (Yoshida & Miyato 2017), averaged over the batch;
(c) :func:`jacobian_entropy` — ``H(J)`` from ``svdvals`` of the full per-sample Jacobian
    (small ``C``); add ``−λ · H`` to the loss to spread the spectrum.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jacrev, jvp, vjp, vmap

from specinterp.spectra import spectral_entropy

__all__ = ["jacobian_entropy", "jacobian_frobenius", "jacobian_spectral_norm"]

Fn = Callable[[torch.Tensor], torch.Tensor]


def _unit(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    v = torch.randn(shape, dtype=like.dtype, device=like.device, generator=generator)
    flat = v.reshape(v.shape[0], -1)
    return (flat / torch.linalg.vector_norm(flat, dim=1, keepdim=True)).reshape(shape)


def jacobian_frobenius(
    fn: Fn, x: torch.Tensor, *, num_projections: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(a) ``mean_i E_v ‖J_i v‖²`` with ``v`` uniform on the unit sphere (``= ‖J_i‖_F²/d``)."""
    if num_projections < 1:
        raise ValueError("num_projections must be ≥ 1")
    total = x.new_zeros(())
    for _ in range(num_projections):
        v = _unit(x.shape, x, generator)
        jv = jvp(fn, (x,), (v,))[1]
        total = total + jv.pow(2).sum() / x.shape[0]
    return total / num_projections


def jacobian_spectral_norm(
    fn: Fn, x: torch.Tensor, *, num_iters: int = 5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(b) ``mean_i σ_1(J_i)²`` by power iteration on ``J_iᵀ J_i``.

    The last product carries the gradient; the iterate itself is held fixed.
    """
    v = _unit(x.shape, x, generator)
    with torch.no_grad():
        for _ in range(num_iters):
            jv = jvp(fn, (x,), (v,))[1]
            _, pull = vjp(fn, x)
            v = pull(jv)[0]
            flat = v.reshape(v.shape[0], -1)
            v = (
                flat / torch.linalg.vector_norm(flat, dim=1, keepdim=True).clamp_min(1e-30)
            ).reshape(x.shape)
    jv = jvp(fn, (x,), (v.detach(),))[1]
    return jv.pow(2).sum() / x.shape[0]


def jacobian_entropy(fn: Fn, x: torch.Tensor) -> torch.Tensor:
    """(c) ``mean_i H(J_i)`` (energy convention) from the full Jacobians.

    Differentiable through the singular values.
    """
    jac = vmap(jacrev(lambda xi: fn(xi[None])[0]))(x)
    return spectral_entropy(jac.reshape(x.shape[0], jac.shape[1], -1)).mean()
