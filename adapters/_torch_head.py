"""Input-Jacobian factors of torch models whose outputs are a linear head on a narrow state.

A language model's logits are ``z = h Wᵀ + b`` with ``W`` ``(V, r)`` the output embedding and
``h`` ``(P, r)`` the last hidden states (``P`` positions, ``r`` the width, ``V`` the
vocabulary). The per-sample Jacobian is then ``J_i = (I_P ⊗ W) K_i`` with ``K_i = ∂h/∂e``
``(P·r, d)``, and with ``W = Q R`` (``Q`` orthonormal columns) ``σ(J_i) = σ((I_P ⊗ R) K_i)``:
``P·r`` backward passes through the network without its head, and a ``(P·r) × d`` SVD per
sample instead of a ``(P·V) × d`` one (:ref:`theory-token-inputs`). On a GPT-2 with its
50 257-word vocabulary and width 64 that is 64 rows instead of 50 257.

The factor is used only where the model's outputs *are* that linear map of the head's input:
every call checks ``z`` against ``h Wᵀ + b`` to the rounding bound of the product
(``|z − h Wᵀ − b| ≤ 2 γ_{r+1} (|h| |W|ᵀ + |b|)``, Higham 2002, §3.5), so logit soft-capping,
scaling or a selector that drops positions fall back to the dense route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import vjp, vmap

from specinterp.operators import DEFAULT_MAX_BYTES

__all__ = ["head_factor", "output_head"]

#: one-hot cotangents pulled back together (``vmap`` chunk)
CHUNK = 64


def output_head(module: Any) -> torch.nn.Linear | None:
    """The module's output embedding (Hugging Face ``get_output_embeddings``), if linear."""
    get = getattr(module, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return head if isinstance(head, torch.nn.Linear) else None


def head_factor(
    f: Callable[[torch.Tensor], torch.Tensor], head: torch.nn.Linear, e: torch.Tensor
) -> torch.Tensor:
    """``B`` ``(N, P·r, d)`` with ``σ(B_i) = σ(J_i)`` for ``J_i = ∂f(e)_i/∂e_i``.

    ``f`` maps the batch ``e`` to outputs ``(N, P, V)`` through ``head``. Raises
    ``NotImplementedError`` where the outputs are not ``head``'s linear map of its input, the
    head is no narrower than its outputs (nothing to gain), or ``B`` would exceed
    :data:`~specinterp.operators.DEFAULT_MAX_BYTES` (callers chunk the samples).
    """
    seen: dict[str, torch.Tensor] = {}

    def capture(mod: torch.nn.Module, args: tuple) -> None:
        seen["h"], seen["w"] = args[0], mod.weight
        if mod.bias is not None:
            seen["b"] = mod.bias

    def body(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.clear()
        handle = head.register_forward_pre_hook(capture)
        try:
            out = f(x)
        finally:
            handle.remove()
        if "h" not in seen:
            raise NotImplementedError("the output head was not called")
        return seen["h"], out.detach()

    h, pull, out = vjp(body, e, has_aux=True)
    w = seen["w"].detach()
    b = seen["b"].detach() if "b" in seen else None
    n, r, vocab = int(e.shape[0]), int(w.shape[1]), int(w.shape[0])
    if r >= vocab:
        raise NotImplementedError("the head is no narrower than its outputs")
    h = h.detach()
    _check_linear(out, h, w, b)
    rows = h[0].numel()  # P·r
    need = n * rows * e[0].numel() * e.element_size()
    if need > DEFAULT_MAX_BYTES:
        raise NotImplementedError(
            f"the head's factor ({n}, {rows}, {e[0].numel()}) would need {need / 2**30:.3g} GiB"
        )
    cots = torch.eye(rows, dtype=h.dtype, device=h.device).reshape(rows, 1, *h.shape[1:])
    cots = cots.expand(rows, *h.shape)
    (k,) = vmap(pull, chunk_size=CHUNK)(cots)  # (P·r, N, *e[1:])
    k = k.reshape(rows, n, -1).permute(1, 0, 2)  # (N, P·r, d)
    r_w = torch.linalg.qr(w, mode="r")[1]  # (r, r): W = Q R
    k = k.reshape(n, rows // r, r, -1)
    return torch.matmul(r_w, k).reshape(n, rows, -1)


def _check_linear(
    out: torch.Tensor, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
) -> None:
    """Raise ``NotImplementedError`` unless ``out = h Wᵀ + b`` to the product's rounding."""
    lin = h @ w.T
    bound = h.abs() @ w.abs().T
    if b is not None:
        lin, bound = lin + b, bound + b.abs()
    if tuple(out.shape) != tuple(lin.shape):
        raise NotImplementedError(
            f"the outputs {tuple(out.shape)} are not the head's {tuple(lin.shape)}"
        )
    eps = torch.finfo(out.dtype).eps
    r = int(w.shape[1])
    gamma = (r + 1) * eps / (1 - (r + 1) * eps)
    if bool(torch.any((out - lin).abs() > 2 * gamma * bound)):
        raise NotImplementedError("the outputs are not a linear map of the head's input")
