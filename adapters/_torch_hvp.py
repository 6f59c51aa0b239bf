"""Hessian-vector products of a torch loss that reuse one gradient graph (reverse-over-reverse).

The loss gradient is built once with ``create_graph=True``; each product is then a single
backward pass through it — the Pearlmutter trick PyHessian uses — instead of a fresh
forward-over-reverse evaluation (:meth:`~specinterp.adapters.torch.TorchModel.hvp_operator`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["gradient_graph_hvp"]


def gradient_graph_hvp(
    loss_value: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    params: dict[str, torch.Tensor],
    unflatten: Callable[[torch.Tensor], dict[str, torch.Tensor]],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v ↦ H v`` (flat) for the Hessian of ``loss_value`` at ``params``.

    ``unflatten`` maps a flat vector to the parameter dict. Parameters the loss does not
    depend on get zero rows and columns.
    """
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    with torch.enable_grad():
        value = loss_value(leaves)
        grads = torch.autograd.grad(
            value, list(leaves.values()), create_graph=True, allow_unused=True
        )
    grads = [
        torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves.values(), strict=True)
    ]
    used = [g.requires_grad for g in grads]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        parts = unflatten(v)
        outs = [g for g, u in zip(grads, used, strict=True) if u]
        cots = [parts[k] for k, u in zip(leaves, used, strict=True) if u]
        with torch.enable_grad():
            hv = torch.autograd.grad(
                outs,
                list(leaves.values()),
                grad_outputs=cots,
                retain_graph=True,
                allow_unused=True,
            )
        return torch.cat(
            [
                (torch.zeros_like(p) if h is None else h).reshape(-1)
                for h, p in zip(hv, leaves.values(), strict=True)
            ]
        ).detach()

    return hvp
