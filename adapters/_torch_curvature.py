"""The torch adapter's loss-curvature products: HVPs, GGN products, dense Hessians.

:class:`TorchCurvature` is mixed into :class:`~specinterp.adapters.torch.TorchModel`; it uses
the model's ``params`` / ``_fixed`` tensors, ``_f`` (outputs at given parameters),
``flatten`` / ``unflatten``, ``check_input`` and ``_plain_module`` (the module where it is an
``nn.Sequential`` whose outputs are the model's). An ``nn.Sequential`` stack of ``Linear`` /
``ConvNd`` layers, elementwise activations and pooling gets the layer-wise sweeps of
:mod:`._torch_sequential_hvp` (:ref:`theory-mlp-hvp`); any other module one reused gradient
graph (:mod:`._torch_hvp`) or, for the GGN, the core's Jacobian products.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import grad, jvp

from specinterp.errors import ModelError
from specinterp.losses import get_loss

from ._torch_calls import refuse_weight_norm
from ._torch_dense import vmap_hessian
from ._torch_hvp import gradient_graph_hvp
from ._torch_sequential_hvp import first_layer_compression, sequential_hvp

__all__ = ["TorchCurvature"]

Product = Callable[[torch.Tensor], torch.Tensor]


class TorchCurvature:
    """HVPs, GGN products and dense Hessians of a torch model's mean loss."""

    params: dict[str, torch.Tensor]
    _fixed: dict[str, torch.Tensor]

    def _checked(self, x: torch.Tensor, hessian: bool) -> None:
        """Check ``x``; for a Hessian, refuse modules whose second derivatives torch gets wrong."""
        self.check_input(x)
        if hessian:
            refuse_weight_norm(getattr(self, "_module", None))

    def _sweeps(
        self, x: torch.Tensor, hessian: bool
    ) -> tuple[Any, dict[str, torch.Tensor], list[str]]:
        """The module, every tensor and the differentiated names, for the layer-wise sweeps."""
        self._checked(x, hessian)
        module = self._plain_module(x)
        return module, {**self._fixed, **self.params}, [*self.params]

    def hvp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, loss: Any) -> torch.Tensor:
        """``H v`` by forward-over-reverse (``jvp`` of ``grad``)."""
        self._checked(x, hessian=True)
        lf = get_loss(loss)
        g = grad(lambda p: lf.value(self._f(p, x), y))
        return self.flatten(jvp(g, (self.params,), (self.unflatten(v),))[1])

    def loss_hessian(self, x: torch.Tensor, y: torch.Tensor, loss: Any) -> torch.Tensor:
        """The dense ``H`` by ``vmap`` over its columns (``NativeHessian``; :mod:`._torch_dense`).

        ``NotImplementedError`` where ``vmap`` cannot map the module (a padding mask, an
        operation without a batching or forward-mode rule): the caller takes ``p`` products.
        """
        self._checked(x, hessian=True)
        try:
            return vmap_hessian(self, x, y, loss)
        except (RuntimeError, ModelError) as exc:  # a real input error recurs in the products
            raise NotImplementedError(f"vmap cannot map this module: {exc}") from exc

    def hvp_operator(self, x: torch.Tensor, y: torch.Tensor, loss: Any) -> Product:
        """``v ↦ H v`` at a fixed batch, the work all products share done once.

        An ``nn.Sequential`` stack of ``Linear`` / ``ConvNd`` layers, activations and pooling:
        the layer-wise R-operator (:mod:`._torch_sequential_hvp`). Others:
        one gradient graph with ``create_graph=True``, a backward pass through it per product
        (reverse-over-reverse, as PyHessian; :mod:`._torch_hvp`).
        """
        module, tensors, names = self._sweeps(x, hessian=True)
        lf = get_loss(loss)
        try:
            return sequential_hvp(module, tensors, names, x, y, lf)
        except NotImplementedError:
            return gradient_graph_hvp(
                lambda p: lf.value(self._f(p, x), y),
                self.params,
                self.unflatten,
            )

    def gauss_newton_operator(self, x: torch.Tensor, y: torch.Tensor, loss: Any) -> Product:
        """``v ↦ GGN v`` of an ``nn.Sequential`` layer stack by the layer-wise sweeps.

        Other modules raise ``NotImplementedError``: the core then takes Jacobian products.
        """
        module, tensors, names = self._sweeps(x, hessian=False)
        return sequential_hvp(module, tensors, names, x, y, get_loss(loss), ggn=True)

    def compressed_curvature(
        self, x: torch.Tensor, y: torch.Tensor, loss: Any, ggn: bool = False
    ) -> tuple[Product, int, Product, Product]:
        """The Hessian (or GGN) on the span of an MLP's first-layer inputs.

        ``(matvec, m, lift, restrict)`` (:func:`._torch_sequential_hvp.first_layer_compression`).
        """
        module, tensors, names = self._sweeps(x, hessian=not ggn)
        return first_layer_compression(module, tensors, names, x, y, get_loss(loss), ggn)
