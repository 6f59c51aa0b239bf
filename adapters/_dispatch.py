"""Which adapter a model object needs: recognised by the module names of its type.

As array-api-compat recognises arrays, :func:`wrap` recognises a model by the modules of its
type's MRO (``torch``, ``flax.nnx``, ``equinox``, ``sklearn``, ...) or of its ``params=``
leaves, and imports only the matching adapter, so ``import specinterp`` never imports a
framework. :func:`specinterp.as_model` calls it.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from specinterp.errors import ModelError
from specinterp.model import Model

__all__ = ["wrap"]


def _mro_modules(obj: Any) -> list[str]:
    return [getattr(cls, "__module__", "") or "" for cls in type(obj).__mro__]


def wrap(obj: Any, params: Any = None, **options: Any) -> Model:
    """The adapter for ``obj`` (see :func:`specinterp.as_model` for what is accepted)."""
    modules = _mro_modules(obj)
    if any(m.startswith("specinterp.adapters.arraynet") for m in modules):
        from .arraynet import ArrayNetModel

        return _checked(ArrayNetModel, "arraynet", options)(obj, **options)
    if any(m.startswith("sklearn") for m in modules):
        from .sklearn import from_sklearn

        return _checked(from_sklearn, "scikit-learn", options)(obj, **options)
    if any(m.startswith("torch") for m in modules) or _leaves_from(params, "torch"):
        from .torch import TorchModel

        return _checked(TorchModel, "torch", options)(obj, params=params, **options)
    if any(m.startswith("equinox") for m in modules):
        from .jax import JaxModel

        return _checked(JaxModel.from_equinox, "Equinox", options)(obj, **options)
    if any(m.startswith("flax.nnx") for m in modules):
        from .flax_nnx import from_nnx

        return _checked(from_nnx, "Flax NNX", options)(obj, **options)
    if any(m.startswith("flax") for m in modules) or _leaves_from(params, "jax"):
        from .jax import JaxModel

        return _checked(JaxModel, "JAX", options)(obj, params=params, **options)
    if params is not None:
        kinds = sorted(_leaf_libraries(params))
        raise ModelError(
            f"params= holds {', '.join(kinds) or 'no'} arrays, which no adapter differentiates: "
            "a JAX apply_fn needs jax arrays (convert with jax.tree.map(jax.numpy.asarray, "
            "params)), a torch callable a dict of torch tensors (torch.as_tensor)"
        )
    raise ModelError(
        f"cannot use a {type(obj).__module__}.{type(obj).__qualname__} as a model: pass a "
        "torch.nn.Module, a JAX apply_fn with params= (a pytree of jax arrays), a Flax linen "
        "module with params=, a Flax NNX or Equinox module, a fitted scikit-learn MLP, or a "
        "specinterp.adapters.arraynet.Sequential"
    )


def _checked(build: Any, kind: str, options: dict[str, Any]) -> Any:
    """``build``, once every option is one of its keyword parameters (else a ModelError)."""
    _, *rest = inspect.signature(build).parameters.values()  # the first takes the model
    internal = {"params", "embedder", "kind"}  # passed by as_model or the adapters themselves
    taken = [p.name for p in rest if p.kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(options) - set(taken) - {"params"})
    if unknown:
        listed = ", ".join(f"{t}=" for t in taken if t not in internal) or "none"
        raise ModelError(
            f"as_model: the {kind} adapter takes no option {', '.join(unknown)}; its options "
            f"are {listed}"
        )
    return build


def _leaf_libraries(params: Any) -> set[str]:
    """Top-level module names of the leaves of ``params``.

    A dict / list / tuple tree is walked directly; other containers (an Equinox module, a Flax
    ``State``) through ``jax.tree_util`` when JAX is already imported.
    """
    found: set[str] = set()
    stack = [params]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif item is not None:
            jax = sys.modules.get("jax")
            leaves = [item] if jax is None else jax.tree_util.tree_leaves(item)
            if leaves != [item]:
                stack.extend(leaves)
                continue
            found.update(m.split(".")[0] for m in _mro_modules(item)[:1])
    return found


def _leaves_from(params: Any, library: str) -> bool:
    """Whether ``params`` (a dict/list/tuple tree) holds an array of ``library``."""
    return any(name.startswith(library) for name in _leaf_libraries(params))
