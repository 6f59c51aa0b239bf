"""Token embeddings of torch models: finding the layer, and the embedded view of the model.

At integer inputs (token ids) the input-side quantities are derivatives with respect to the
output ``e = E[x]`` of the token embedding layer (:ref:`theory-token-inputs`). The layer is

1. the one named by ``as_model(m, embedding="name")``; else
2. Hugging Face's ``m.get_input_embeddings()``; else
3. the submodule that receives the input ids themselves in a forward pass — an
   ``nn.Embedding`` if exactly one does (a positional embedding receives positions, not the
   ids), else the innermost module of any kind that maps the ids to floats of shape
   ``(N, T, d)`` (TransformerLens' ``Embed``).

The embedded view runs the whole network on the same ids with a forward hook that replaces
that layer's output by ``e``, so positions, masks and everything downstream are computed as
in the model itself.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from specinterp.errors import LabelError, ModelError, ShapeError

__all__ = [
    "capture_output",
    "check_ids",
    "differentiable_kernels",
    "embedded_call",
    "find_embedding",
    "module_call",
    "obvious_embedding",
]


@contextlib.contextmanager
def differentiable_kernels() -> Iterator[None]:
    """Run a forward pass with the kernels that have every derivative the products need.

    Fused attention kernels (flash / memory-efficient SDPA, the ``nn.TransformerEncoderLayer``
    and ``nn.MultiheadAttention`` fast paths) lack forward-mode and double-backward
    derivatives; the math SDPA kernel and the layers' plain code compute the same function
    from differentiable operations.
    """
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def obvious_embedding(root: torch.nn.Module) -> torch.nn.Module | None:
    """``get_input_embeddings()``, else the only ``nn.Embedding``; ``None`` if ambiguous."""
    getter = getattr(root, "get_input_embeddings", None)
    found = getter() if callable(getter) else None
    if isinstance(found, torch.nn.Embedding):
        return found
    layers = [m for m in root.modules() if isinstance(m, torch.nn.Embedding)]
    return layers[0] if len(layers) == 1 else None


def check_ids(layer: torch.nn.Module, x: torch.Tensor, what: str) -> None:
    """Token ids must index rows of ``layer``'s table (when it has ``num_embeddings``)."""
    rows = getattr(layer, "num_embeddings", None)
    if rows is None or x.numel() == 0:
        return
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= rows:
        raise LabelError(
            f"{what} holds token ids from {lo} to {hi}, but the embedding table has {rows} "
            f"rows (ids 0..{rows - 1}); map them into the model's vocabulary"
        )


def capture_output(layer: torch.nn.Module, forward: Callable[[], Any], name: str) -> torch.Tensor:
    """The output of ``layer`` during ``forward()`` (no gradients), detached."""
    captured: list[Any] = []
    handle = layer.register_forward_hook(lambda m, a, out: captured.append(out))
    try:
        with torch.no_grad():
            forward()
    finally:
        handle.remove()
    if not captured or not isinstance(captured[0], torch.Tensor):
        raise ModelError(f"the embedding layer {name!r} produced no tensor output")
    return captured[0].detach()


def _name_of(root: torch.nn.Module, target: torch.nn.Module) -> str:
    for name, mod in root.named_modules():
        if mod is target:
            return name
    raise ModelError("the embedding layer returned by get_input_embeddings() is not a submodule")


def find_embedding(
    root: torch.nn.Module, call: Callable[[torch.Tensor], Any], x: torch.Tensor, name: str | None
) -> tuple[str, torch.nn.Module]:
    """``(name, module)`` of the token embedding layer of ``root`` (see the module docstring)."""
    embeddings = [n for n, m in root.named_modules() if isinstance(m, torch.nn.Embedding)]
    if name is not None:
        try:
            return name, root.get_submodule(name)
        except AttributeError as exc:
            raise ModelError(
                f"the model has no submodule {name!r} (embedding=); its nn.Embedding layers "
                f"are {embeddings or 'none'}"
            ) from exc
    getter = getattr(root, "get_input_embeddings", None)
    if callable(getter):
        try:
            found = getter()
        except NotImplementedError:
            found = None
        if isinstance(found, torch.nn.Module):
            return _name_of(root, found), found
    fed: list[str] = []
    hooks = []
    # the ids are only traced, so clamp them into every table (out-of-range ids are reported
    # by the caller's check, not as an IndexError from this probe)
    tables = [m.num_embeddings for m in root.modules() if isinstance(m, torch.nn.Embedding)]
    if tables:
        x = x.clamp(0, min(tables) - 1)

    def record(mod_name: str) -> Callable[..., None]:
        def hook(mod: torch.nn.Module, args: tuple, out: Any) -> None:
            if (
                args
                and args[0] is x
                and isinstance(out, torch.Tensor)
                and out.is_floating_point()
                and tuple(out.shape[: x.ndim]) == tuple(x.shape)
                and out.ndim == x.ndim + 1
            ):
                fed.append(mod_name)

        return hook

    for mod_name, mod in root.named_modules():
        if mod_name:
            hooks.append(mod.register_forward_hook(record(mod_name)))
    failure: Exception | None = None
    try:
        with torch.no_grad():
            call(x)
    except (RuntimeError, IndexError, TypeError) as exc:  # reported below if nothing was found
        failure = exc
    finally:
        for h in hooks:
            h.remove()
    fed_embeddings = [n for n in fed if n in embeddings]
    innermost = [n for n in fed if not any(o.startswith(n + ".") for o in fed)]
    chosen = fed_embeddings if fed_embeddings else innermost
    if len(chosen) == 1:
        return chosen[0], root.get_submodule(chosen[0])
    if not chosen:
        why = (
            "" if failure is None else f" (the forward pass failed: {str(failure).splitlines()[0]})"
        )
        raise ModelError(
            "integer inputs are token ids, and no layer of this model maps them to embeddings "
            f"(nn.Embedding layers: {embeddings or 'none'}){why}; if the model takes real "
            "features, cast x to the parameters' floating dtype; if it takes token ids, name "
            "the token embedding with as_model(model, embedding='name')"
        ) from failure
    raise ModelError(
        f"the token ids feed several embedding layers {chosen}; name the token embedding with "
        "as_model(model, embedding='name')"
    )


def embedded_call(
    layer: torch.nn.Module, call: Callable[[dict, torch.Tensor], Any]
) -> Callable[[dict, torch.Tensor, torch.Tensor], Any]:
    """``(params, ids, e) ↦ f`` with ``layer``'s output replaced by ``e``.

    ``e`` may hold ``k`` copies of each sample in a row (``(k·N, T, d)``, sample-major — the
    layout of SmoothGrad noise and Integrated-Gradients paths); the ids are repeated to match.
    """

    def run(params: dict, ids: torch.Tensor, e: torch.Tensor) -> Any:
        n, m = int(ids.shape[0]), int(e.shape[0])
        if m % n:
            raise ShapeError(f"embeddings for {n} token sequences must have k·{n} rows; got {m}")
        if m != n:
            ids = torch.repeat_interleave(ids, m // n, dim=0)

        def hook(mod: torch.nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            if tuple(out.shape) != tuple(e.shape):
                raise ShapeError(
                    f"embeddings have shape {tuple(e.shape)} but the embedding layer gives "
                    f"{tuple(out.shape)}"
                )
            return e

        handle = layer.register_forward_hook(hook)
        try:
            return call(params, ids)
        finally:
            handle.remove()

    return run


def module_call(
    module: torch.nn.Module, buffers: dict, pad_token_id: int | None = None, **kwargs: Any
) -> Callable[[dict, torch.Tensor], Any]:
    """``(params, x) ↦ module(x, **kwargs)`` through ``functional_call``.

    With ``pad_token_id``, token ids also get ``attention_mask = (x != pad_token_id)``: a
    function of the ids, so it follows them wherever the samples are chunked, repeated or
    mapped one by one.
    """

    def call(p: dict, x: torch.Tensor) -> Any:
        kw = kwargs
        if pad_token_id is not None and not x.is_floating_point():
            kw = {**kwargs, "attention_mask": (x != pad_token_id).to(torch.long)}
        return functional_call(module, (p, buffers), (x,), kw or None)

    return call


def checked_pad(module: torch.nn.Module, pad_token_id: int | None) -> int | None:
    """``pad_token_id`` if the module's ``forward`` takes an ``attention_mask``."""
    if pad_token_id is None:
        return None
    if "attention_mask" not in inspect.signature(module.forward).parameters:
        raise ModelError(
            f"pad_token_id= passes attention_mask to the module, and "
            f"{type(module).__name__}.forward takes none; mask the padding in the module"
        )
    return int(pad_token_id)


def pad_warning(module: torch.nn.Module | None, x: torch.Tensor) -> str | None:
    """The warning for ids holding the model's configured pad token when nothing masks it."""
    pad = getattr(getattr(module, "config", None), "pad_token_id", None)
    if not isinstance(pad, int) or not bool(torch.any(x == pad)):
        return None
    return (
        f"the token ids contain the model's pad_token_id {pad} and no attention mask is "
        "applied, so padding positions are attended to; pass "
        f"as_model(model, pad_token_id={pad}) to mask them"
    )
