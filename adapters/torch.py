"""PyTorch adapter: ``nn.Module`` or batch-first callables through ``torch.func``.

Products use ``torch.func.functional_call`` with the module's parameters and buffers;
``jvp`` / ``vjp`` give input and parameter products, the HVP is forward-over-reverse
(``jvp`` of ``grad``), and the dense Jacobians have native ``vmap(jacrev)`` paths.

Models whose output depends on the mode (dropout, batch norm) must be in eval mode: a module in
training mode with such layers is refused (call ``module.eval()``), because a Jacobian of a
stochastic or batch-coupled function is not what the framework analyses.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence

import array_api_compat.torch as xp_torch
import torch
from torch.func import functional_call, grad, jacrev, jvp, vjp, vmap

from specinterp.errors import ModelError
from specinterp.losses import check_loss, loss_value
from specinterp.model import ModelBase

from ._torch_regions import region_boundaries

__all__ = ["TorchModel"]

_MODE_DEPENDENT = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


class TorchModel(ModelBase):
    """A torch model behind the :class:`~specinterp.model.Model` protocol.

    Parameters
    ----------
    model : torch.nn.Module or callable
        A module, or a callable ``f(params, x)`` with ``params`` a dict of tensors.
    params : dict of str to Tensor, optional
        Parameters of a callable (ignored for a module, whose ``named_parameters()`` are used).
    param_names : sequence of str, optional
        A subset of parameter names to differentiate; the others are held fixed.
    input_shape : sequence of int, optional
        Per-sample input shape, checked on every call when given.

    """

    def __init__(
        self,
        model: torch.nn.Module | Callable[..., torch.Tensor],
        params: dict[str, torch.Tensor] | None = None,
        *,
        param_names: Sequence[str] | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        self.xp = xp_torch
        self.input_shape = None if input_shape is None else tuple(input_shape)
        if isinstance(model, torch.nn.Module):
            if model.training and any(isinstance(m, _MODE_DEPENDENT) for m in model.modules()):
                raise ModelError(
                    "the module is in training mode and has dropout or batch-norm layers, so its "
                    "output is random or batch-coupled; call module.eval() first"
                )
            all_params = {k: v.detach() for k, v in model.named_parameters()}
            self._buffers = {k: v.detach() for k, v in model.named_buffers()}
            module = model
            self._module = model

            def call(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
                return functional_call(module, (p, self._buffers), (x,))

            self._call = call
        elif callable(model) and isinstance(params, dict):
            self._module = None
            all_params = {k: v.detach() for k, v in params.items()}
            self._buffers = {}
            self._call = model
        else:
            raise ModelError(
                "pass a torch.nn.Module, or a callable f(params, x) with params= a dict of tensors"
            )
        names = list(all_params) if param_names is None else list(param_names)
        unknown = [n for n in names if n not in all_params]
        if unknown:
            raise ModelError(f"unknown parameter names {unknown}; known: {list(all_params)}")
        self._fixed = {k: v for k, v in all_params.items() if k not in names}
        self.params = {k: all_params[k] for k in names}
        if not self.params:
            raise ModelError("the model has no parameters to differentiate")
        dtypes = {v.dtype for v in self.params.values()}
        devices = {v.device for v in self.params.values()}
        if len(dtypes) != 1 or len(devices) != 1:
            raise ModelError(f"parameters must share one dtype and device; got {dtypes}, {devices}")
        self.dtype = dtypes.pop()
        self.device = devices.pop()
        self._shapes = [tuple(v.shape) for v in self.params.values()]
        self._sizes = [math.prod(s) for s in self._shapes]
        self.num_params = sum(self._sizes)

    # ------------------------------------------------------------------ helpers
    def check_input(self, x: torch.Tensor, what: str = "x") -> None:
        """The shared input checks, and that the module was not put back in training mode."""
        module = self._module
        if (
            module is not None
            and module.training
            and any(isinstance(m, _MODE_DEPENDENT) for m in module.modules())
        ):
            raise ModelError(
                "the wrapped module was switched to training mode (module.train()) after "
                "as_model; its dropout / batch-norm layers make the output random or "
                "batch-coupled — call module.eval() before analysing it"
            )
        super().check_input(x, what)

    def _f(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        try:
            out = self._call({**self._fixed, **p}, x)
        except RuntimeError as exc:  # shape mismatches inside the module's own layers
            raise ModelError(
                f"the model failed on inputs of per-sample shape {tuple(x.shape[1:])}: "
                f"{str(exc).splitlines()[0]} — check that x has the shape the model expects "
                "(as_model(..., input_shape=...) checks it before any call)"
            ) from exc
        if out.ndim != 2:
            raise ModelError(f"the model must return (N, C) outputs; got shape {tuple(out.shape)}")
        return out

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat parameter vector into the parameter dict."""
        self.check_flat_params(v)
        chunks = torch.split(v, self._sizes)
        return {
            k: c.reshape(s)
            for (k, s), c in zip(zip(self.params, self._shapes, strict=True), chunks, strict=True)
        }

    def flatten(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate a parameter dict (same keys) into one flat vector."""
        return torch.cat([p[k].reshape(-1) for k in self.params])

    def weight_matrices(self) -> list[tuple[str, torch.Tensor]]:
        """The differentiated 2-d parameters (``Linear`` weights), by name."""
        return [(k, v) for k, v in self.params.items() if v.ndim == 2]

    def with_params(self, theta: torch.Tensor) -> TorchModel:
        """The same model with the flat parameter vector ``theta``."""
        other = copy.copy(self)
        other.params = self.unflatten(theta)
        return other

    @property
    def flat_params(self) -> torch.Tensor:
        """The current parameters as one flat vector."""
        return self.flatten(self.params)

    # ------------------------------------------------------------------ protocol
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(N, C)``."""
        self.check_input(x)
        return self._f(self.params, x)

    def jvp_input(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``J_i v_i``."""
        self.check_input(x)
        return jvp(lambda xx: self._f(self.params, xx), (x,), (v,))[1]

    def vjp_input(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``J_iᵀ u_i``."""
        self.check_input(x)
        _, pullback = vjp(lambda xx: self._f(self.params, xx), x)
        return pullback(u)[0]

    def jvp_params(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``G_i v``."""
        self.check_input(x)
        return jvp(lambda p: self._f(p, x), (self.params,), (self.unflatten(v),))[1]

    def vjp_params(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``Σ_i G_iᵀ u_i``."""
        self.check_input(x)
        _, pullback = vjp(lambda p: self._f(p, x), self.params)
        return self.flatten(pullback(u)[0])

    def hvp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, loss: str) -> torch.Tensor:
        """``H v`` by forward-over-reverse (``jvp`` of ``grad``)."""
        self.check_input(x)
        check_loss(loss)
        g = grad(lambda p: loss_value(self._f(p, x), y, loss))
        return self.flatten(jvp(g, (self.params,), (self.unflatten(v),))[1])

    def hvp_operator(
        self, x: torch.Tensor, y: torch.Tensor, loss: str
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``v ↦ H v`` at a fixed batch, reusing one gradient graph (reverse-over-reverse).

        The loss gradient is built once with ``create_graph=True``; each product is then a
        single backward pass through it — the Pearlmutter trick PyHessian uses — instead of a
        fresh forward-over-reverse evaluation.
        """
        self.check_input(x)
        check_loss(loss)
        leaves = {k: v.detach().requires_grad_(True) for k, v in self.params.items()}
        with torch.enable_grad():
            value = loss_value(self._f(leaves, x), y, loss)
            grads = torch.autograd.grad(
                value, list(leaves.values()), create_graph=True, allow_unused=True
            )
        grads = [
            torch.zeros_like(p) if g is None else g
            for g, p in zip(grads, leaves.values(), strict=True)
        ]
        used = [g.requires_grad for g in grads]

        def hvp(v: torch.Tensor) -> torch.Tensor:
            parts = self.unflatten(v)
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

    # ------------------------------------------------------------------ capabilities
    def region_boundaries(self, x: torch.Tensor, max_bytes: int) -> Iterator[list[tuple]]:
        """Activation-region boundary functions and their input gradients (T4), per chunk.

        For an ``nn.Sequential`` of affine and ReLU / LeakyReLU / MaxPool layers; see
        :mod:`specinterp.adapters._torch_regions`.
        """
        self.check_input(x)
        if self._module is None:
            raise ModelError(
                "certified_radius needs the network as an nn.Module (an nn.Sequential of "
                "piecewise-linear layers), not a function of a parameter dict"
            )
        tensors = {**self._buffers, **self._fixed, **self.params}
        return region_boundaries(self._module, tensors, x, max_bytes)

    # ------------------------------------------------------------------ native dense paths
    def input_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, d)`` by ``vmap(jacrev)`` over samples."""
        self.check_input(x)

        def single(xi: torch.Tensor) -> torch.Tensor:
            return self._f(self.params, xi[None])[0]

        jac = vmap(jacrev(single))(x)
        return jac.reshape(x.shape[0], jac.shape[1], -1)

    def param_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, p)`` by ``vmap(jacrev)`` over samples."""
        self.check_input(x)

        def single(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
            return self._f(p, xi[None])[0]

        jac = vmap(jacrev(single), in_dims=(None, 0))(self.params, x)
        n, c = x.shape[0], next(iter(jac.values())).shape[1]
        return torch.cat([jac[k].reshape(n, c, -1) for k in self.params], dim=2)
