"""The 2-d convolutions of a torch module, with their input sizes (for exact conv spectra)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from specinterp.capabilities import ConvKernel

__all__ = ["torch_conv_kernels"]


def torch_conv_kernels(
    module: torch.nn.Module,
    params: dict[str, torch.Tensor],
    run: Any,
    input_shape: Sequence[int] | None,
) -> list[ConvKernel]:
    """Every ``nn.Conv2d`` whose weight is among ``params``.

    Input and output sizes come from forward hooks during one call ``run(x)`` on a zero input
    of shape ``(1, *input_shape)`` (none without an input shape).
    """
    convs = {
        f"{name}.weight" if name else "weight": mod
        for name, mod in module.named_modules()
        if isinstance(mod, torch.nn.Conv2d)
    }
    convs = {k: m for k, m in convs.items() if k in params}
    sizes: dict[int, tuple[int, int]] = {}
    outs: dict[int, tuple[int, int]] = {}
    if convs and input_shape is not None:

        def record(mod: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
            sizes.setdefault(id(mod), (int(args[0].shape[-2]), int(args[0].shape[-1])))
            outs.setdefault(id(mod), (int(out.shape[-2]), int(out.shape[-1])))

        hooks = [m.register_forward_hook(record) for m in convs.values()]
        try:
            w = next(iter(params.values()))
            with torch.no_grad():
                run(torch.zeros((1, *input_shape), dtype=w.dtype, device=w.device))
        finally:
            for h in hooks:
                h.remove()
    return [
        ConvKernel(
            name=name,
            kernel=params[name],
            stride=tuple(int(s) for s in mod.stride),  # type: ignore[arg-type]
            input_size=sizes.get(id(mod)),
            output_size=outs.get(id(mod)),
            circular=mod.padding_mode == "circular",
            groups=int(mod.groups),
            dilation=tuple(int(d) for d in mod.dilation),  # type: ignore[arg-type]
        )
        for name, mod in convs.items()
    ]
