"""PyTorch adapter: ``nn.Module`` or batch-first callables through ``torch.func``.

Products use ``torch.func.functional_call`` with the module's parameters and buffers;
``jvp`` / ``vjp`` give input and parameter products, one HVP is forward-over-reverse (``jvp`` of
``grad``), a Hessian operator's the layer-wise R-operator for an ``nn.Sequential`` MLP and one
reused gradient graph otherwise, and the dense Jacobians have native ``vmap(jacrev)`` paths.

Models whose output depends on the mode (dropout, batch norm) must be in eval mode: a module in
training mode with such layers is refused (call ``module.eval()``), because a Jacobian of a
stochastic or batch-coupled function is not what the framework analyses.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import array_api_compat.torch as xp_torch
import torch
from torch.func import jvp, vjp

from specinterp import _xp
from specinterp.capabilities import ConvKernel
from specinterp.errors import ModelError
from specinterp.model import ModelBase

from ._outputs import OutputSelector, output_selector
from ._torch_calls import refuse_retrained, refuse_unusable, split_parameters, with_context
from ._torch_conv import torch_conv_kernels
from ._torch_curvature import TorchCurvature
from ._torch_dense import vmap_input_jacobian, vmap_param_jacobian
from ._torch_embedding import (
    capture_output,
    check_ids,
    checked_pad,
    embedded_call,
    find_embedding,
    module_call,
    obvious_embedding,
    pad_warning,
)
from ._torch_head import head_factor, output_head
from ._torch_mlp import sequential_factors
from ._torch_regions import region_boundaries

__all__ = ["TorchModel"]


class TorchModel(TorchCurvature, ModelBase):
    """A torch model behind the :class:`~specinterp.model.Model` protocol.

    Parameters
    ----------
    model : torch.nn.Module or callable
        A module, or a callable ``f(params, x)`` with ``params`` a dict of tensors.
    params : dict of str to Tensor, optional
        Parameters of a callable (ignored for a module, whose ``named_parameters()`` are used).
    param_names : sequence of str, optional
        A subset of parameter names to differentiate; the others are held fixed. Default for a
        module: its parameters that require grad — the ones an optimiser trains and PyHessian
        differentiates, so a frozen backbone stays fixed — or all of them when none does (a
        module frozen for inference).
    input_shape : sequence of int, optional
        Per-sample input shape, checked on every call when given.
    output : str or callable, optional
        Which array of a dict / dataclass output (a Hugging Face ``ModelOutput``) to analyse: a
        key, or a callable of the raw output; default ``"logits"``. A callable may also pick
        part of a plain tensor output (``lambda z: z[:, -1]``: last-token logits).
    embedding : str, optional
        Name of the token embedding submodule, for integer inputs (found automatically when
        unambiguous).
    pad_token_id : int, optional
        Token id of padding: the module (whose ``forward`` takes ``attention_mask``, as Hugging
        Face models) is called with ``attention_mask = (ids != pad_token_id)``. Ids holding
        the model's configured ``pad_token_id`` without this option give a warning.

    """

    accepts_token_ids = True

    def __init__(
        self,
        model: torch.nn.Module | Callable[..., torch.Tensor],
        params: dict[str, torch.Tensor] | None = None,
        *,
        param_names: Sequence[str] | None = None,
        input_shape: Sequence[int] | None = None,
        output: str | Callable[[Any], torch.Tensor] | None = None,
        embedding: str | None = None,
        pad_token_id: int | None = None,
    ) -> None:
        self.xp = xp_torch
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self._select: OutputSelector = output_selector(output)
        self._embedding_name = embedding
        self._pad_warned = False
        self._embedding: tuple[str, torch.nn.Module] | None = None
        self._ids: torch.Tensor | None = None  # the token ids of an embedded view
        self._run: Callable[..., Any] | None = None  # (params, ids, e) ↦ outputs, embedded view
        if isinstance(model, torch.nn.Module):
            refuse_unusable(model)
            all_params = {k: v.detach() for k, v in model.named_parameters()}
            # by default the trainable parameters, or all where none is (frozen for inference)
            default = [k for k, v in model.named_parameters() if v.requires_grad] or [*all_params]
            self._buffers = {k: v.detach() for k, v in model.named_buffers()}
            self._module = model
            self._pad = checked_pad(model, pad_token_id)
            self._call = module_call(model, self._buffers, self._pad)
            self._head = output_head(model)
        elif callable(model) and isinstance(params, dict):
            if pad_token_id is not None:
                raise ModelError(
                    "pad_token_id= masks padding through a module's attention_mask; a function "
                    "of (params, x) should apply its mask itself"
                )
            self._module = None
            self._pad = None
            self._head = None
            all_params = {k: v.detach() for k, v in params.items()}
            default = [*all_params]
            self._buffers = {}
            self._call = model
        else:
            raise ModelError(
                "pass a torch.nn.Module, or a callable f(params, x) with params= a dict of tensors"
            )
        names = default if param_names is None else list(param_names)
        self.params, self._fixed = split_parameters(all_params, names)
        dtypes = {v.dtype for v in self.params.values()}
        devices = {v.device for v in self.params.values()}
        if len(dtypes) != 1 or len(devices) != 1:
            raise ModelError(f"parameters must share one dtype and device; got {dtypes}, {devices}")
        self.dtype = dtypes.pop()
        _xp.check_parameter_precision(self.dtype, xp_torch)
        self.device = devices.pop()
        self._shapes = [tuple(v.shape) for v in self.params.values()]
        self._sizes = [math.prod(s) for s in self._shapes]
        self.num_params = sum(self._sizes)

    def __repr__(self) -> str:
        what = type(self._module).__name__ if self._module is not None else "callable"
        view = ", embedded view" if self._ids is not None else ""
        fixed = sum(v.numel() for v in self._fixed.values())
        held = f" ({fixed:,} more held fixed)" if fixed else ""
        return (
            f"TorchModel({what}{view}, p={self.num_params:,}{held}, dtype={self.dtype}, "
            f"device={self.device}{self._shapes_text()}, output={self._select.describe()})"
        )

    # ------------------------------------------------------------------ helpers
    def check_input(self, x: torch.Tensor, what: str = "x") -> None:
        """The shared input checks, and that the module was not put back in training mode."""
        refuse_retrained(self._module)
        super().check_input(x, what)

    def _embedding_layer(self, x: torch.Tensor) -> tuple[str, torch.nn.Module]:
        if self._module is None:
            raise ModelError(
                "input-side quantities at token ids need the network as an nn.Module (to find "
                "its embedding layer); a function of a parameter dict has none"
            )
        if self._embedding is None:
            tensors = {**self._fixed, **self.params}
            self._embedding = find_embedding(
                self._module, lambda ids: self._call(tensors, ids), x, self._embedding_name
            )
        return self._embedding

    def check_token_ids(self, x: torch.Tensor, what: str = "x") -> None:
        """Token ids must index rows of the embedding table (an ``nn.Embedding``)."""
        if self._module is not None:
            check_ids(self._token_table(x), x, what)
            if self._pad is None and not self._pad_warned:
                message = pad_warning(self._module, x)
                if message is not None:
                    self._pad_warned = True
                    warnings.warn(message, UserWarning, stacklevel=3)

    def _token_table(self, x: torch.Tensor) -> torch.nn.Module:
        """The embedding layer, without a probing forward pass when it is unambiguous."""
        if self._embedding is None and self._embedding_name is None:
            layer = obvious_embedding(self._module)
            if layer is not None:
                return layer
        return self._embedding_layer(x)[1]

    def _f(
        self, p: dict[str, torch.Tensor], x: torch.Tensor, ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Outputs in the model's own shape ``(N, *out)`` (``ids``: the embedded view's)."""
        with with_context(x):
            if self._run is None:
                out = self._call({**self._fixed, **p}, x)
            else:
                out = self._run({**self._fixed, **p}, self._ids if ids is None else ids, x)
        out = self._select(out)
        if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != x.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelError(
                f"the model must return one output row per sample, (N, *out); got {got} for "
                f"{int(x.shape[0])} samples (output= selects an array from a structured output)"
            )
        return out

    def _flat(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = self._f(p, x)
        return out.reshape(out.shape[0], -1)

    def output_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """Per-sample output shape (one forward pass on the first sample)."""
        self.check_input(x)
        probe = x if self._ids is not None else x[:1]  # an embedded view is bound to its ids
        with torch.no_grad():
            return self._remember_shapes(x, tuple(self._f(self.params, probe).shape[1:]))

    def embedded(self, x: torch.Tensor) -> tuple[TorchModel, torch.Tensor]:
        """The view on token embeddings: ``(model_e, e)`` with ``e = E[x]`` ``(N, T, d)``."""
        self.check_input(x)
        if x.is_floating_point():
            return self, x
        name, layer = self._embedding_layer(x)
        e = capture_output(layer, lambda: self._f(self.params, x), name)
        if e.dtype != self.dtype:
            raise ModelError(
                f"the embedding layer {name!r} gives {e.dtype}, the parameters {self.dtype}"
            )
        view = copy.copy(self)
        view._run = embedded_call(layer, self._call)
        view._ids = x
        view._module = None
        view.accepts_token_ids = False
        view.input_shape = tuple(e.shape[1:])
        view._embedding_name = name
        return view, e

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

    def conv_kernels(self, input_shape: Sequence[int] | None = None) -> list[ConvKernel]:
        """The module's ``nn.Conv2d`` layers with their input sizes (capability ``ConvKernels``)."""
        if self._module is None:
            raise NotImplementedError("a callable model has no convolution modules to inspect")
        shape = self.input_shape if input_shape is None else tuple(input_shape)
        return torch_conv_kernels(self._module, self.params, self.apply, shape)

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
        """Flattened outputs ``(N, C)``."""
        self.check_input(x)
        return self._flat(self.params, x)

    def jvp_input(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``J_i v_i``."""
        self.check_float_input(x, "jvp_input")
        return jvp(lambda xx: self._flat(self.params, xx), (x,), (v,))[1]

    def vjp_input(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``J_iᵀ u_i``."""
        self.check_float_input(x, "vjp_input")
        _, pullback = vjp(lambda xx: self._flat(self.params, xx), x)
        return pullback(u)[0]

    def jvp_params(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``G_i v``."""
        self.check_input(x)
        return jvp(lambda p: self._flat(p, x), (self.params,), (self.unflatten(v),))[1]

    def vjp_params(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``Σ_i G_iᵀ u_i``."""
        self.check_input(x)
        _, pullback = vjp(lambda p: self._flat(p, x), self.params)
        return self.flatten(pullback(u)[0])

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

    def layer_factors(self, x: torch.Tensor) -> Any:
        """The MLP product form (T3, T4, the layer-wise NTK) of an ``nn.Sequential`` MLP."""
        self.check_float_input(x, "layer_factors")
        with torch.no_grad():
            held = set(self.params) if self._fixed else None
            tensors = {**self._fixed, **self.params}
            return sequential_factors(self._plain_module(x), tensors, x, held)

    def _plain_module(self, x: torch.Tensor) -> torch.nn.Module | None:
        """The module if its outputs are the model's at float ``x``, else ``None`` (refused)."""
        if self._module is None or self._run is not None or not self._select.is_identity():
            return None
        return self._module if x.is_floating_point() else None

    def last_position_model(self) -> TorchModel:
        """The model computing only its last position, for a Hugging Face causal LM.

        Its ``forward`` takes ``logits_to_keep``: with 1 the head maps only the last hidden
        state of each sequence — the same logits as the last position of the full outputs.
        """
        module = self._module
        if module is None or self._run is not None:
            raise NotImplementedError("only a module on token ids can drop positions")
        if "logits_to_keep" not in inspect.signature(module.forward).parameters:
            raise NotImplementedError("the module's forward takes no logits_to_keep")
        last = copy.copy(self)
        last._call = module_call(module, self._buffers, self._pad, logits_to_keep=1)
        last._seen_shapes = None
        return last

    def input_jacobian_factor(self, x: torch.Tensor) -> torch.Tensor:
        """``B_i`` ``(N, P·r, d)`` with ``σ(B_i) = σ(J_i)``, for outputs that are a linear head.

        A Hugging Face model's logits through its output embedding (``get_output_embeddings``,
        width ``r``, checked on every call): ``P·r`` backward passes instead of a Jacobian with
        ``P·V`` rows (:mod:`._torch_head`).
        """
        self.check_float_input(x, "input_jacobian_factor")
        if self._head is None:
            raise NotImplementedError("no linear output head (get_output_embeddings)")
        return head_factor(lambda e: self._f(self.params, e), self._head, x)

    # ------------------------------------------------------------------ native dense paths
    def input_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, d)`` by ``vmap`` over samples of ``jacrev``, or ``jacfwd`` where ``d < C``."""
        self.check_float_input(x, "input_jacobian")
        return vmap_input_jacobian(self, x)

    def param_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, p)`` by ``vmap(jacrev)`` over samples."""
        self.check_input(x)
        return vmap_param_jacobian(self, x)
