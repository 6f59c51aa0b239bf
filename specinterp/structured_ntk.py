r"""The empirical NTK of an MLP from layer Grams, without the parameter Jacobian.

For ``z_l = W_l h_{l−1} + b_l``, ``h_l = φ_l(z_l)`` and ``f = z_L``, the derivative of
``f_a(x_i)`` in ``W_l`` is the outer product ``B_{l,i}[a] h_{l−1,i}ᵀ`` with the back-propagated
signal ``B_{l,i} = ∂f/∂z_l = W_L D_{L−1,i} ⋯ W_{l+1} D_{l,i}`` (``C × n_l``; ``B_L = I_C``), and in
``b_l`` it is ``B_{l,i}[a]``. Since ``⟨u vᵀ, u' v'ᵀ⟩ = (u·u')(v·v')``,

.. math::

   K[(i,a),(j,b)] = \sum_l \big(h_{l−1,i}·h_{l−1,j} + [b_l]\big)\,
                    \big(B_{l,i}[a]·B_{l,j}[b]\big),

the layer-wise identity of Novak, Sohl-Dickstein & Schoenholz (2022), "Fast finite width
neural tangent kernel" (:ref:`theory-structured-ntk`). It costs ``N·C·Σ n_l n_{l−1}`` for the
signals and ``(N·C)²·Σ n_l`` for the Grams against ``(N·C)²·p`` for ``G Gᵀ`` — and never holds
``G`` (``N·C × p``: 19 GB in float32 for a 784-1024-1024-10 MLP at ``N = 256``).
"""

from __future__ import annotations

import math
from typing import Any

from . import _xp
from .capabilities import ProductForm, use
from .errors import ModelError
from .gram import gram

Array = Any

__all__ = ["backpropagated_signals", "product_form_for_ntk", "structured_ntk"]


def product_form_for_ntk(model: Any, x: Array) -> Any | None:
    """The model's product form at ``x`` when the layer-wise NTK applies to it, else ``None``.

    It applies when the adapter records each dense layer's input and bias (``LayerFactors``
    ``inputs`` / ``biases``) and the model's parameters are the dense layers' weights and
    biases — all of them, or those the factors mark ``trained`` (so ``K = G Gᵀ`` over the
    same ``θ``).
    """
    try:
        fac = use(model, ProductForm, x)
    except (NotImplementedError, ModelError):  # no product form, or not at these inputs (ids)
        return None
    if fac.inputs is None or fac.biases is None:
        return None
    counted = sum(
        (math.prod(w.shape) if on_w else 0) + (int(w.shape[0]) if b and on_b else 0)
        for w, b, (on_w, on_b) in zip(fac.weights, fac.biases, _trained(fac), strict=True)
    )
    return fac if counted == model.num_params else None


def _trained(fac: Any) -> tuple[tuple[bool, bool], ...]:
    """Per dense layer, whether its weight and its bias are differentiated."""
    return fac.trained if fac.trained is not None else ((True, True),) * len(fac.weights)


def backpropagated_signals(fac: Any, n: int) -> list[Array | None]:
    """``B_l = ∂f/∂z_l`` per sample, ``(N, C, n_l)``, for every dense layer but the last.

    The last layer's signal is ``I_C`` for every sample and is returned as ``None`` (the
    Gram handles it as ``δ_ab``). Multiplied from the output side: ``N·C·Σ n_l n_{l−1}`` flops.
    """
    xp = _xp.namespace(fac.weights[-1])
    w_out = fac.weights[-1]
    c = int(w_out.shape[0])
    signals: list[Array | None] = [None]
    a = xp.broadcast_to(w_out, (n, *w_out.shape))  # ∂f/∂h_{L−1}
    for layer in range(len(fac.weights) - 2, -1, -1):
        b = a * fac.diagonals[layer][:, None, :]  # ∂f/∂z_{layer+1}
        signals.append(b)
        if layer > 0:
            w = fac.weights[layer]
            a = xp.reshape(xp.reshape(b, (n * c, int(w.shape[0]))) @ w, (n, c, int(w.shape[1])))
    return signals[::-1]


def structured_ntk(fac1: Any, fac2: Any | None = None, *, trace: bool = False) -> Array:
    """``K = Σ_l ([W_l] H_{l−1} H'_{l−1}ᵀ + [b_l]) ⊙ (B_l B'_lᵀ)`` from two product forms.

    ``[W_l]``, ``[b_l]``: whether layer ``l``'s weight, its bias, is differentiated (and exists).

    Parameters
    ----------
    fac1, fac2 : LayerFactors
        The product forms at ``x1`` and ``x2`` (with ``inputs`` and ``biases``); ``fac2=None``
        is the self-NTK at ``x1`` (its signal Grams from the upper block triangle only).
    trace : bool
        Return the trace NTK ``Σ_a K[(i,a),(j,a)]`` ``(N₁, N₂)`` instead of ``(N₁C, N₂C)``.

    Returns
    -------
    array
        Sample-major, as :func:`specinterp.operators.ntk` (:ref:`theory-structured-ntk`).

    """
    xp = _xp.namespace(fac1.weights[-1])
    same = fac2 is None
    fac2 = fac1 if same else fac2
    n1, n2 = int(fac1.inputs[0].shape[0]), int(fac2.inputs[0].shape[0])
    c = int(fac1.weights[-1].shape[0])
    sig1 = backpropagated_signals(fac1, n1)
    sig2 = sig1 if same else backpropagated_signals(fac2, n2)
    out = None
    layers = zip(fac1.inputs, fac2.inputs, sig1, sig2, fac1.biases, _trained(fac1), strict=True)
    for h1, h2, b1, b2, bias, (on_w, on_b) in layers:
        if not (on_w or (bias and on_b)):
            continue  # a frozen layer contributes nothing
        # (N₁, N₂); the self-NTK's from the exactly symmetric Gram (a GEMM's H Hᵀ need not be)
        if on_w:
            act = gram(_flat(xp, h1)) if same else _flat(xp, h1) @ _flat(xp, h2).T
        else:  # the bias alone: ∂f/∂b_l = B_l, its activation Gram is all ones
            act = xp.zeros((n1, n2), dtype=h1.dtype, device=_xp.device(h1))
        if bias and on_b:
            act = act + 1.0
        if b1 is None:  # the output layer: B_L B_Lᵀ = δ_ab
            term = act * c if trace else _kron_eye(xp, act, c)
        elif trace:
            rows1, rows2 = xp.reshape(b1, (n1, -1)), xp.reshape(b2, (n2, -1))
            term = act * (gram(rows1) if same else rows1 @ rows2.T)
        else:
            rows1 = xp.reshape(b1, (n1 * c, int(b1.shape[2])))
            rows2 = xp.reshape(b2, (n2 * c, int(b2.shape[2])))
            sig = gram(rows1) if same else rows1 @ rows2.T
            term = xp.reshape(
                xp.reshape(sig, (n1, c, n2, c)) * act[:, None, :, None], (n1 * c, n2 * c)
            )
        out = term if out is None else out + term
    return out


def _flat(xp: Any, h: Array) -> Array:
    return xp.reshape(h, (int(h.shape[0]), -1))


def _kron_eye(xp: Any, a: Array, c: int) -> Array:
    """``a ⊗ I_C`` sample-major: ``[(i,a'),(j,b)] = a[i,j] δ_{a'b}``."""
    n1, n2 = int(a.shape[0]), int(a.shape[1])
    eye = xp.eye(c, dtype=a.dtype, device=_xp.device(a))
    return xp.reshape(a[:, None, :, None] * eye[None, :, None, :], (n1 * c, n2 * c))
