"""The user's torch module as the adapter calls it: which modules are refused, and its errors.

The twin of :mod:`._jax_calls`. A module whose dropout or batch-norm layers are in training
mode, or an encoder–decoder module that needs decoder inputs besides the ids, is refused when
wrapped (:func:`refuse_unusable`) and, for the first, again if it is switched back to training
mode afterwards (:func:`refuse_retrained`); one with torch's ``weight_norm``, whose second
derivatives torch gets wrong, is refused for Hessians (:func:`refuse_weight_norm`); a shape,
dtype or missing-derivative error from
inside the layers becomes a ``ModelError`` that names the inputs (:func:`with_context`); the
parameters differentiated are split from those held fixed (:func:`split_parameters`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch

from specinterp.errors import ModelError

from ._torch_embedding import differentiable_kernels

__all__ = [
    "refuse_retrained",
    "refuse_unusable",
    "refuse_weight_norm",
    "split_parameters",
    "with_context",
]

_MODE_DEPENDENT = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


def _training(module: torch.nn.Module) -> bool:
    """Whether ``module`` is in training mode with layers that behave differently then."""
    return module.training and any(isinstance(m, _MODE_DEPENDENT) for m in module.modules())


def refuse_unusable(module: torch.nn.Module) -> None:
    """Raise ``ModelError`` for a module in training mode or one that needs decoder inputs."""
    if _training(module):
        raise ModelError(
            "the module is in training mode and has dropout or batch-norm layers, so its "
            "output is random or batch-coupled; call module.eval() first"
        )
    if "decoder_input_ids" in inspect.signature(module.forward).parameters:
        raise ModelError(
            f"{type(module).__name__} is an encoder-decoder model, whose forward needs "
            "decoder inputs besides the ids: analyse its encoder, si.as_model("
            "model.get_encoder(), output='last_hidden_state'), or a module whose "
            "forward(ids) calls model(input_ids=ids, decoder_input_ids=...)"
        )


def refuse_retrained(module: torch.nn.Module | None) -> None:
    """Raise ``ModelError`` if the wrapped module was put back in training mode."""
    if module is not None and _training(module):
        raise ModelError(
            "the wrapped module was switched to training mode (module.train()) after "
            "as_model; its dropout / batch-norm layers make the output random or "
            "batch-coupled — call module.eval() before analysing it"
        )


def split_parameters(
    named: dict[str, torch.Tensor], names: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The parameters ``names`` (to differentiate) and the others (held fixed), in order."""
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ModelError(f"unknown parameter names {unknown}; known: {list(named)}")
    if not names:
        raise ModelError("the model has no parameters to differentiate")
    return {k: named[k] for k in names}, {k: v for k, v in named.items() if k not in names}


def refuse_weight_norm(module: Any) -> None:
    """Raise ``ModelError`` for a module with torch's ``weight_norm`` anywhere in it.

    torch's fused ``_weight_norm_interface`` has a wrong double backward (torch 2.13): the
    Hessian it gives through ``parametrizations.weight_norm`` (or the older
    ``utils.weight_norm``) is not symmetric — off by 0.9 on a 3 × 3 convolution and by 2.3 on a
    16 × 2 linear layer, its columns matching finite differences of the gradient and its rows
    not — so every Hessian product would be silently wrong. Reverse-mode first derivatives
    (Jacobians, the NTK) are right and are not refused; torch has no forward mode through it.
    """
    wn_type = getattr(torch.nn.utils.parametrizations, "_WeightNorm", ())
    for name, mod in module.named_modules() if module is not None else []:
        plist = getattr(mod, "parametrizations", {})
        found = any(isinstance(p, wn_type) for ps in plist.values() for p in ps)
        found = found or any(
            type(h).__name__ == "WeightNorm" for h in mod._forward_pre_hooks.values()
        )
        if found:
            raise ModelError(
                f"module {name or '(root)'} uses torch's weight_norm, whose second derivatives "
                "torch computes wrongly (a non-symmetric Hessian), so Hessian products would be "
                "silently wrong; register the weight with a parametrization written in plain "
                "tensor operations instead (g * v / v.norm over all but the first axis), or "
                "analyse the Jacobians or the NTK, which need first derivatives only"
            )


@contextlib.contextmanager
def with_context(x: torch.Tensor) -> Iterator[None]:
    """Run the module on ``x`` with differentiable kernels; its errors name the inputs."""
    try:
        with differentiable_kernels():
            yield
    except (RuntimeError, IndexError) as exc:  # shape / dtype errors inside the layers
        if "forward AD" in str(exc):  # torch reports a missing forward-mode rule this way too
            raise _no_derivative(exc) from exc
        kind = (
            "token ids" if not x.is_floating_point() else f"per-sample shape {tuple(x.shape[1:])}"
        )
        raise ModelError(
            f"the model failed on inputs of {kind}: {str(exc).splitlines()[0]} — check "
            "that x has the shape and dtype the model expects (as_model(..., "
            "input_shape=...) checks the shape before any call)"
        ) from exc
    except NotImplementedError as exc:
        raise _no_derivative(exc) from exc


def _no_derivative(exc: Exception) -> ModelError:
    return ModelError(
        f"{str(exc).splitlines()[0]} — an operation of this model has no forward-mode "
        "or second derivative in torch, which Jacobian and Hessian products need; for "
        "Hugging Face models build them with attn_implementation='eager'"
    )
