"""Token embeddings of Flax models (linen and NNX): finding the layer and replacing its output.

Both embedders answer the same two questions for :class:`~specinterp.adapters.jax.JaxModel`:
how many rows the token table has (JAX clamps out-of-range indices silently, so the adapter
checks ids against it), and the embedded view ``(e, run)`` with ``run(params, ids, e)`` the
network with the embedding layer's output replaced by ``e`` (:ref:`theory-token-inputs`).

The layer is the one named by ``embedding=`` (its linen name / NNX attribute path, dotted),
else the ``Embed`` layer that the ids themselves feed, when exactly one does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from specinterp.errors import ModelError

__all__ = ["LinenEmbedder", "NnxEmbedder"]


def _choose(found: list[tuple[str, int]], name: str | None, known: list[str]) -> tuple[str, int]:
    if name is not None:
        for path, rows in found:
            if path == name:
                return path, rows
        raise ModelError(f"the model has no Embed layer {name!r} (embedding=); it has {known}")
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelError(
            "integer inputs are token ids, and no Embed layer of this model takes them "
            f"(Embed layers: {known or 'none'}); name the token embedding with "
            "as_model(model, ..., embedding='name'), or pass real floating inputs"
        )
    raise ModelError(
        f"the token ids feed several Embed layers {[p for p, _ in found]}; name the token "
        "embedding with as_model(model, ..., embedding='name')"
    )


class _Embedder:
    """What both Flax embedders share: the table size of the layer ``_target`` finds."""

    def _target(self, params: Any, x: jax.Array) -> tuple[str, int]:
        raise NotImplementedError

    def num_rows(self, params: Any, x: jax.Array) -> int:
        """Rows of the token table."""
        return self._target(params, x)[1]


class LinenEmbedder(_Embedder):
    """The token ``nn.Embed`` of a linen module, through ``nn.intercept_methods``."""

    def __init__(self, module: Any, name: str | None) -> None:
        self.module = module
        self.name = name
        self._found: tuple[str, int] | None = None

    def _target(self, params: Any, x: jax.Array) -> tuple[str, int]:
        if self._found is None:
            import flax.linen as nn

            fed: list[tuple[str, int]] = []
            known: list[str] = []

            def record(next_fun: Callable, args: tuple, kwargs: dict, ctx: Any) -> Any:
                mod = ctx.module
                if isinstance(mod, nn.Embed) and ctx.method_name == "__call__":
                    path = ".".join(mod.path)
                    known.append(path)
                    if (self.name is None and args and args[0] is x) or path == self.name:
                        fed.append((path, int(mod.num_embeddings)))
                return next_fun(*args, **kwargs)

            with nn.intercept_methods(record):
                jax.eval_shape(lambda p: self.module.apply(p, x), params)
            self._found = _choose(fed, self.name, known)
        return self._found

    def view(self, params: Any, x: jax.Array) -> tuple[jax.Array, Callable[..., Any]]:
        """``(e, run)``: the embeddings of ``x`` and the network from embeddings."""
        import flax.linen as nn

        path = self._target(params, x)[0]

        def is_target(ctx: Any) -> bool:
            return (
                isinstance(ctx.module, nn.Embed)
                and ctx.method_name == "__call__"
                and ".".join(ctx.module.path) == path
            )

        captured: list[jax.Array] = []

        def capture(next_fun: Callable, args: tuple, kwargs: dict, ctx: Any) -> Any:
            out = next_fun(*args, **kwargs)
            if is_target(ctx):
                captured.append(out)
            return out

        with nn.intercept_methods(capture):
            self.module.apply(params, x)

        def run(p: Any, ids: jax.Array, e: jax.Array) -> Any:
            def replace(next_fun: Callable, args: tuple, kwargs: dict, ctx: Any) -> Any:
                return e if is_target(ctx) else next_fun(*args, **kwargs)

            with nn.intercept_methods(replace):
                return self.module.apply(p, ids)

        return captured[0], run


class NnxEmbedder(_Embedder):
    """The token ``nnx.Embed`` of an NNX module: its attribute replaced in a merged copy."""

    def __init__(self, graphdef: Any, rest: Any, name: str | None) -> None:
        self.graphdef = graphdef
        self.rest = rest
        self.name = name
        self._found: tuple[str, int] | None = None

    def _merge(self, params: Any) -> Any:
        from flax import nnx

        return nnx.merge(self.graphdef, params, self.rest)

    def _embeds(self, module: Any) -> list[tuple[tuple, Any]]:
        from flax import nnx

        return [
            (path, m) for path, m in nnx.iter_graph(module) if isinstance(m, nnx.Embed) and path
        ]

    def _target(self, params: Any, x: jax.Array) -> tuple[str, int]:
        if self._found is None:
            module = self._merge(params)
            embeds = self._embeds(module)
            known = [".".join(map(str, p)) for p, _ in embeds]
            fed: list[tuple[str, int]] = []
            for path, m in embeds:
                dotted = ".".join(map(str, path))
                if self.name is not None:
                    if dotted == self.name:
                        fed.append((dotted, int(m.num_embeddings)))
                    continue
                seen: list[bool] = []
                probe = _Probe(m, x, seen)
                _set_path(module, path, probe)
                try:
                    module(x)
                finally:
                    _set_path(module, path, m)
                if any(seen):
                    fed.append((dotted, int(m.num_embeddings)))
            self._found = _choose(fed, self.name, known)
        return self._found

    def view(self, params: Any, x: jax.Array) -> tuple[jax.Array, Callable[..., Any]]:
        """``(e, run)``: the embeddings of ``x`` and the network from embeddings."""
        dotted = self._target(params, x)[0]
        path = tuple(int(p) if p.isdigit() else p for p in dotted.split("."))
        e = _get_path(self._merge(params), path)(x)

        def run(p: Any, ids: jax.Array, ee: jax.Array) -> Any:
            module = self._merge(p)
            _set_path(module, path, lambda _ids: ee)
            return module(ids)

        return e, run


class _Probe:
    """Stands in for an Embed layer during discovery and notes whether the ids reached it."""

    def __init__(self, layer: Any, x: jax.Array, seen: list[bool]) -> None:
        self.layer, self.x, self.seen = layer, x, seen

    def __call__(self, ids: Any, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(ids is self.x)
        return self.layer(ids, *args, **kwargs)


def _get_path(module: Any, path: tuple) -> Any:
    for p in path:
        module = module[p] if isinstance(p, int) else getattr(module, p)
    return module


def _set_path(module: Any, path: tuple, value: Any) -> None:
    parent = _get_path(module, path[:-1])
    if isinstance(path[-1], int):
        parent[path[-1]] = value
    else:
        object.__setattr__(parent, path[-1], value)


class EqxEmbedder:
    """The token ``eqx.nn.Embedding`` of a per-sample Equinox module.

    Equinox embeddings are called token by token (``jax.vmap(self.embedding)(ids)``), so the
    layer cannot be handed a whole sequence of embeddings. The view instead replaces the layer
    by one whose table *is* the sequence's embeddings, ``e_i`` (``T × d``), and calls the module
    on the positions ``0 … T−1``: row ``t`` of that table is the embedding of the token at
    position ``t``. This assumes what holds for a language model — the module reads its input
    ids only through the embedding layer (positions come from the sequence length).
    """

    def __init__(self, static: Any, name: str | None) -> None:
        self.static = static
        self.name = name
        self._path: tuple | None = None

    def _module(self, params: Any) -> Any:
        import equinox as eqx

        return eqx.combine(params, self.static)

    def _target(self, params: Any) -> tuple[tuple, Any]:
        import equinox as eqx

        module = self._module(params)
        found = [
            (path, leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(
                module, is_leaf=lambda n: isinstance(n, eqx.nn.Embedding)
            )[0]
            if isinstance(leaf, eqx.nn.Embedding)
        ]
        names = {_dotted(path): (path, leaf) for path, leaf in found}
        path, _ = _choose([(n, 0) for n in names], self.name, list(names))
        self._path = names[path][0]
        return names[path]

    def num_rows(self, params: Any, x: jax.Array) -> int:
        """Rows of the token table."""
        return int(self._target(params)[1].num_embeddings)

    def view(self, params: Any, x: jax.Array) -> tuple[jax.Array, Callable[..., Any]]:
        """``(e, run)``: the embeddings of ``x`` and the network from embeddings."""
        import equinox as eqx
        import jax.numpy as jnp

        path, layer = self._target(params)
        if x.ndim != 2:
            raise ModelError("an Equinox module's embedded view needs token ids of shape (N, T)")
        e = layer.weight[x]

        def where(m: Any) -> Any:
            return _at(m, path)

        def run(p: Any, ids: jax.Array, ee: jax.Array) -> Any:
            module = self._module(p)
            positions = jnp.arange(ids.shape[1])

            def one(table: jax.Array) -> Any:
                return eqx.tree_at(where, module, eqx.nn.Embedding(weight=table))(positions)

            return jax.vmap(one)(ee)

        return e, run


def _dotted(path: tuple) -> str:
    parts = []
    for key in path:
        for attr in ("name", "idx", "key"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return ".".join(parts)


def _at(module: Any, path: tuple) -> Any:
    for key in path:
        if hasattr(key, "name"):
            module = getattr(module, key.name)
        elif hasattr(key, "idx"):
            module = module[key.idx]
        else:
            module = module[key.key]
    return module
