"""Hessian-vector products of an ``nn.Sequential`` MLP's loss by the layer-wise R-operator.

For ``[Flatten,] Linear, φ, …, φ, Linear`` (:func:`._torch_mlp.dense_stack`) everything a
product shares — the activations, ``φ'`` and ``φ''`` of every layer, the back-propagated loss
gradients — is computed once; each product is then one forward and one backward sweep of
matrix products in the direction ``v`` (Pearlmutter 1994), with no autograd graph
(:ref:`theory-mlp-hvp`). Exact: the same ``H v`` as reverse-over-reverse, to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from specinterp.linalg.compression import weight_block_maps

from ._torch_mlp import dense_stack, sequential_factors

__all__ = ["first_layer_compression", "sequential_hvp"]

Tensor = torch.Tensor
Tensors = dict[str, torch.Tensor]
Product = Callable[[torch.Tensor], torch.Tensor]


def _second_derivative(act: Any, z: torch.Tensor) -> torch.Tensor | None:
    """``φ''(z)``, or ``None`` where it vanishes (as for ReLU).

    Reverse over reverse on ``Σ φ``: exact for an elementwise ``φ``, and every activation has
    a double backward (not every one a forward-mode rule for its backward, e.g. SiLU).
    """
    with torch.enable_grad():
        t = z.detach().requires_grad_(True)
        (d1,) = torch.autograd.grad(act(t).sum(), t, create_graph=True)
        if not d1.requires_grad:
            return None
        (d2,) = torch.autograd.grad(d1.sum(), t, allow_unused=True)
    return d2 if d2 is not None and bool(torch.any(d2 != 0)) else None


def sequential_hvp(
    module: Any, tensors: Tensors, names: list[str], x: Tensor, y: Any, loss: Any, ggn: bool = False
) -> Product:
    """``v ↦ H v`` (flat, in the order of ``names``) for the mean loss of an MLP at ``x, y``.

    ``tensors`` maps every parameter name to its value; ``names`` are those differentiated
    (the rest are held fixed). ``loss`` is a :class:`~specinterp.losses.Loss`: its output
    gradient and ``Λ`` products give the last layer's signals. With ``ggn`` the
    product is the GGN's, ``(1/N) Σ G_iᵀ Λ_i G_i v``: the same sweeps without the terms in the
    loss gradient ``δ`` (the residual curvature; :ref:`theory-mlp-hvp`).

    Raises
    ------
    NotImplementedError
        Unless ``module`` is an ``nn.Sequential`` MLP (:func:`._torch_mlp.dense_stack`).

    """
    with torch.no_grad():
        x = x.detach()
        _, layers = dense_stack(module, x)
        fac = sequential_factors(module, tensors, x)  # h_{l−1}, φ'(z_l), W_l, z_l
        inputs, slopes, weights = fac.inputs, fac.diagonals, fac.weights
        curvatures = [
            None if ggn else _second_derivative(act, z)
            for (_, act), z in zip(layers[:-1], fac.preactivations, strict=True)
        ]
        n = int(inputs[0].shape[0])
        b = tensors.get(f"{layers[-1][0]}.bias")
        h, w = inputs[-1], weights[-1]
        out = h @ w.T if b is None else torch.addmm(b, h, w.T)
        curvature = loss.hessian_at(out, y)  # dz ↦ Λ dz, the targets checked once
        # δ_l = ∂L/∂z_l, and e_l ⊙ φ''(z_l) with e_l = δ_{l+1} W_{l+1} (the φ'' term of R δ_l)
        deltas: list[torch.Tensor | None] = [None] * len(layers)  # none in the GGN
        bends: list[torch.Tensor | None] = [None] * len(slopes)
        if not ggn:
            deltas[-1] = loss.gradient(out, y) / n
            for i in range(len(slopes) - 1, -1, -1):
                e = deltas[i + 1] @ weights[i + 1]
                deltas[i] = e * slopes[i]
                bends[i] = None if curvatures[i] is None else e * curvatures[i]
    wkeys = [f"{name}.weight" for name, _ in layers]
    bkeys = [f"{name}.bias" for name, _ in layers]
    trained = [(wk in names or bk in names) for wk, bk in zip(wkeys, bkeys, strict=True)]
    low = trained.index(True)  # no signal is needed below the first differentiated layer
    shapes = [tuple(tensors[k].shape) for k in names]
    sizes = [tensors[k].numel() for k in names]
    last = len(layers) - 1

    def hvp(v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            parts = {
                k: p.view(s) for k, p, s in zip(names, torch.split(v, sizes), shapes, strict=True)
            }
            r_in: list[torch.Tensor | None] = [None] * len(layers)  # R h_{l-1}
            r_pre: list[torch.Tensor | None] = [None] * len(layers)  # R z_l
            rz = None
            for i in range(low, len(layers)):
                if i > low:
                    r_in[i] = rz * slopes[i - 1]
                    rz = r_in[i] @ weights[i].T
                dw, db = parts.get(wkeys[i]), parts.get(bkeys[i])
                if dw is not None:
                    rz = inputs[i] @ dw.T if rz is None else rz.addmm_(inputs[i], dw.T)
                if db is not None:
                    rz = db.expand(n, -1).clone() if rz is None else rz.add_(db)
                r_pre[i] = rz
            rd = curvature(rz) / n  # R δ_L
            result: dict[str, torch.Tensor] = {}
            for i in range(last, low - 1, -1):
                if wkeys[i] in parts:
                    gw = rd.T @ inputs[i]
                    if r_in[i] is not None and deltas[i] is not None:
                        gw.addmm_(deltas[i].T, r_in[i])
                    result[wkeys[i]] = gw
                if bkeys[i] in parts:
                    result[bkeys[i]] = rd.sum(0)
                if i > low:
                    e = rd @ weights[i]
                    if wkeys[i] in parts and deltas[i] is not None:
                        e.addmm_(deltas[i], parts[wkeys[i]])
                    rd = e * slopes[i - 1]
                    if bends[i - 1] is not None:
                        rd.addcmul_(bends[i - 1], r_pre[i - 1])
            return torch.cat([result[k].reshape(-1) for k in names])

    return hvp


def first_layer_compression(
    module: Any, tensors: Tensors, names: list[str], x: Tensor, y: Any, loss: Any, ggn: bool = False
) -> tuple[Product, int, Product, Product]:
    """``(matvec, m, lift, restrict)`` of the Hessian (or the GGN) on the first layer's inputs.

    With ``Q`` (``n_0 × N``) orthonormal columns spanning the batch's inputs ``h_0``, the loss
    depends on ``W_1`` only through ``W_1 Q``: ``H`` vanishes on the directions of ``W_1``
    orthogonal to ``Q``, and on the rest it is the Hessian of the same MLP at inputs
    ``h_0 Q`` with first weight ``W_1 Q`` (:ref:`theory-mlp-hvp`).

    Raises
    ------
    NotImplementedError
        Unless ``module`` is an ``nn.Sequential`` MLP whose first weight is differentiated and
        whose batch has fewer samples than that layer has inputs.

    """
    h, layers = dense_stack(module, x.detach())
    first = f"{layers[0][0]}.weight"
    n, d = (int(s) for s in h.shape)
    if first not in names or n >= d:
        raise NotImplementedError("the first layer's inputs span its whole input space")
    q = torch.linalg.qr(h.T)[0]  # (d, n): its span contains every input row
    reduced = {**tensors, first: tensors[first] @ q}
    matvec = sequential_hvp(module, reduced, names, h @ q, y, loss, ggn)
    start = sum(tensors[k].numel() for k in names[: names.index(first)])
    lift, restrict = weight_block_maps(q, int(tensors[first].shape[0]), start)
    return matvec, sum(reduced[k].numel() for k in names), lift, restrict
