"""Spectral regularisers (:ref:`theory-regularisers`): one API for PyTorch, JAX and arraynet.

Each function takes a batch-first callable ``fn(x) -> (N, C)`` of the training framework (a
torch module, a closure over its parameters, a JAX function of the inputs) and a batch ``x``
of that framework, and returns a differentiable scalar to add to the training loss:

(a) :func:`jacobian_frobenius` — ``mean_i E_v ‖J_i v‖²`` for random unit ``v``, an unbiased
    estimate of ``mean_i ‖J_i‖_F² / d`` (Hoffman, Roberts & Yaida 2019);
(b) :func:`jacobian_spectral_norm` — ``mean_i σ_1(J_i)²`` by power iteration (Yoshida &
    Miyato 2017), the iterate held fixed so that the last product carries the gradient;
(c) :func:`jacobian_entropy` — ``mean_i H(J_i)`` from the singular values of the full
    per-sample Jacobians (small ``C``); add ``−λ · H`` to spread the spectrum.

Randomness is one argument, ``rng``, in the framework's own terms: a ``torch.Generator`` or a
JAX key (both advance as the caller wishes), or an int seed. ``rng=None`` draws from torch's
global generator; JAX has no global random state and needs a key.

arraynet has no autodiff to differentiate a scalar through; its trainer takes the same
regulariser (a) as ``arraynet.train(..., jacobian_penalty=λ)`` and computes the penalty's
exact parameter gradient by the R-operator.
"""

from __future__ import annotations

from typing import Any

Array = Any

__all__ = ["jacobian_entropy", "jacobian_frobenius", "jacobian_spectral_norm"]


def jacobian_frobenius(fn: Any, x: Array, *, num_projections: int = 1, rng: Any = None) -> Array:
    """(a) ``mean_i E_v ‖J_i v‖²`` with ``v`` uniform on the unit sphere (``= ‖J_i‖_F²/d``).

    Parameters
    ----------
    fn : callable
        ``x ↦ outputs (N, C)`` in the framework of ``x``.
    x : torch tensor or JAX array
        The batch, ``(N, *input_shape)``.
    num_projections : int
        Random directions averaged (the estimate is unbiased for any number).
    rng : torch.Generator, JAX key, int or None
        Source of the directions.

    """
    if num_projections < 1:
        raise ValueError(f"num_projections must be ≥ 1; got {num_projections}")
    return _framework(x, fn).jacobian_frobenius(fn, x, num_projections=num_projections, rng=rng)


def jacobian_spectral_norm(fn: Any, x: Array, *, num_iters: int = 5, rng: Any = None) -> Array:
    """(b) ``mean_i σ_1(J_i)²`` by ``num_iters`` power-iteration steps on ``J_iᵀ J_i``."""
    if num_iters < 1:
        raise ValueError(f"num_iters must be ≥ 1; got {num_iters}")
    return _framework(x, fn).jacobian_spectral_norm(fn, x, num_iters=num_iters, rng=rng)


def jacobian_entropy(fn: Any, x: Array) -> Array:
    """(c) ``mean_i H(J_i)`` (energy convention), differentiable through the singular values."""
    return _framework(x, fn).jacobian_entropy(fn, x)


def _framework(x: Array, fn: Any) -> Any:
    from .model import ModelBase

    if isinstance(fn, ModelBase):
        raise TypeError(
            "the regularisers differentiate through your training framework, so fn is the "
            "function x ↦ outputs itself — your torch or Flax NNX module, or a closure such as "
            "lambda x: apply_fn(params, x) — not the as_model(...) wrapper, whose parameters "
            "are a fixed copy"
        )
    if not callable(fn):
        raise TypeError(f"fn must be a callable x ↦ outputs (N, C); got {type(fn).__name__}")
    from .adapters._regularizers import implementation  # imports only the framework needed

    return implementation(x)
