"""Dense float64 truths for the torch curvature products: torch's own Hessian and GGN.

The Hessian of the mean loss as a function of the flat differentiated parameters comes from
``torch.autograd.functional.hessian``; the GGN from torch's Jacobian of the outputs and its
Hessian of each sample's loss in its outputs. Nothing here shares code with the library
but :func:`assert_ggn_products`, which holds the library's GGN products against them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call

import specinterp as si


def targets(loss: str, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    if loss == "cross_entropy":
        return torch.randint(0, 3, (n,), generator=gen)
    if loss == "bce_with_logits":
        return torch.randint(0, 2, (n, 3), generator=gen).double()
    return torch.randn(n, 3, generator=gen, dtype=torch.float64)


def dense_hessian(net, names, x, y, loss_fn) -> np.ndarray:
    """``∇²_θ L`` over the flat parameters ``names`` (the rest held at their values)."""
    values = dict(net.named_parameters())
    shapes = [values[k].shape for k in names]
    sizes = [values[k].numel() for k in names]

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        parts = {k: t.view(s) for k, t, s in zip(names, flat.split(sizes), shapes, strict=True)}
        fixed = {k: v.detach() for k, v in values.items() if k not in parts}
        return loss_fn(functional_call(net, {**fixed, **parts}, (x,)), y)

    flat = torch.cat([values[k].detach().reshape(-1) for k in names])
    return torch.autograd.functional.hessian(loss_of, flat).numpy()


LOSSES = {
    "cross_entropy": torch.nn.functional.cross_entropy,
    "mse": lambda z, y: 0.5 * ((z - y) ** 2).sum(1).mean(),
    "bce_with_logits": lambda z, y: (
        torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none").sum(1).mean()
    ),
}


def products(hvp, p: int) -> np.ndarray:
    """The operator's dense matrix, column by column."""
    eye = torch.eye(p, dtype=torch.float64)
    return torch.stack([hvp(eye[j]) for j in range(p)], dim=1).numpy()


def dense_ggn(net, names, x, y, loss) -> np.ndarray:
    """``(1/N) Σ_i G_iᵀ Λ_i G_i`` from torch's Jacobian of the outputs in the parameters
    ``names`` and torch's Hessian of each sample's loss in its outputs."""
    values = {k: v.detach() for k, v in net.named_parameters()}
    fixed = {k: v for k, v in values.items() if k not in names}

    def outputs(*parts):
        return functional_call(net, {**fixed, **dict(zip(names, parts, strict=True))}, (x,))

    jac = torch.autograd.functional.jacobian(outputs, tuple(values[k] for k in names))
    z = outputs(*(values[k] for k in names)).detach()
    n, c = z.shape
    g = torch.cat([j.reshape(n, c, -1) for j in jac], dim=2)
    lam = torch.stack(
        [
            torch.autograd.functional.hessian(
                lambda zi, i=i: LOSSES[loss](zi[None], y[i : i + 1]), z[i]
            )
            for i in range(n)
        ]
    )
    return (torch.einsum("nap,nab,nbq->pq", g, lam, g) / n).numpy()


def assert_ggn_products(net, x, y, loss: str) -> None:
    """The adapter's layer-wise GGN products and ``si.ggn_operator``'s equal :func:`dense_ggn`."""
    model = si.as_model(net)
    want = dense_ggn(net, [k for k, _ in net.named_parameters()], x, y, loss)
    got = products(model.gauss_newton_operator(x, y, loss), model.num_params)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    op = si.ggn_operator(net, x, y, loss)
    np.testing.assert_allclose(products(op.matvec, model.num_params), want, atol=1e-12)
