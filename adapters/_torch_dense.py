"""The torch adapter's native dense Jacobians: ``vmap`` over samples of ``jacrev`` / ``jacfwd``.

Each sample's Jacobian is the Jacobian of a one-sample call, mapped over the batch (and over
the token ids of an embedded view). A model called with a padding mask
(``as_model(..., pad_token_id=)``) has none: Hugging Face's mask preparation branches in
Python on the mask's values, which ``vmap`` cannot trace, so those models take the batched
product routes of :mod:`specinterp.operators` (``NotImplementedError`` is the signal).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.func import jacfwd, jacrev, vmap

__all__ = ["vmap_input_jacobian", "vmap_param_jacobian"]


def _mapped(model: Any) -> None:
    if model._pad is not None:
        raise NotImplementedError(
            "a padding mask is prepared in data-dependent Python, which vmap cannot map"
        )


def vmap_input_jacobian(model: Any, x: torch.Tensor) -> torch.Tensor:
    """``(N, C, d)``: ``jacrev`` per sample, ``jacfwd`` where the inputs are fewer (``d < C``)."""
    _mapped(model)
    n = int(x.shape[0])
    jac_mode = jacfwd if math.prod(x.shape[1:]) < math.prod(model.output_shape(x)) else jacrev
    if model._ids is None:

        def single(xi: torch.Tensor) -> torch.Tensor:
            return model._flat(model.params, xi[None])[0]

        jac = vmap(jac_mode(single))(x)
    else:
        ids = model._ids
        if n != int(ids.shape[0]):
            ids = torch.repeat_interleave(ids, n // int(ids.shape[0]), dim=0)

        def single_e(ei: torch.Tensor, idi: torch.Tensor) -> torch.Tensor:
            return model._f(model.params, ei[None], idi[None]).reshape(-1)

        jac = vmap(jac_mode(single_e))(x, ids)
    return jac.reshape(n, jac.shape[1], -1)


def vmap_param_jacobian(model: Any, x: torch.Tensor) -> torch.Tensor:
    """``(N, C, p)``: ``jacrev`` over the parameters per sample, columns in parameter order."""
    _mapped(model)

    def single(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return model._flat(p, xi[None])[0]

    jac = vmap(jacrev(single), in_dims=(None, 0))(model.params, x)
    n, c = x.shape[0], next(iter(jac.values())).shape[1]
    return torch.cat([jac[k].reshape(n, c, -1) for k in model.params], dim=2)
