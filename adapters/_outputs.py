"""Choosing the array to analyse from a model's output (any framework).

Models return an array, or a structure: a dict, a dataclass (Hugging Face ``ModelOutput``,
which is both), a tuple. ``output=`` selects from it — a key (``"logits"``, the default), an
integer position, or a callable of the raw output (which may also slice a plain array, e.g.
``lambda z: z[:, -1]`` for the last token's logits).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from specinterp import _xp
from specinterp.errors import ModelError

__all__ = ["OutputSelector", "output_selector"]


class OutputSelector:
    """Callable ``raw output ↦ array`` for one ``output=`` specification."""

    def __init__(self, spec: str | int | Callable[[Any], Any] | None) -> None:
        if spec is not None and not isinstance(spec, str | int) and not callable(spec):
            raise ModelError(
                f"output= must be a key, an integer position or a callable; got {type(spec)}"
            )
        self.spec = spec

    def describe(self) -> str:
        """Short description for ``repr``."""
        if self.spec is None:
            return "array or 'logits'"
        if callable(self.spec):
            return getattr(self.spec, "__qualname__", "callable")
        return repr(self.spec)

    def is_identity(self) -> bool:
        """Whether an array output passes unchanged (no key, position or callable given)."""
        return self.spec is None

    def __call__(self, raw: Any) -> Any:
        spec = self.spec
        if callable(spec):
            return spec(raw)
        if spec is None and _xp.is_array(raw):
            return raw
        key = "logits" if spec is None else spec
        if isinstance(key, int):
            if isinstance(raw, tuple | list):
                if -len(raw) <= key < len(raw):
                    return raw[key]
                raise ModelError(f"output={key} is out of range for a {len(raw)}-tuple output")
            if isinstance(raw, Mapping):  # ModelOutput also indexes by position
                return list(raw.values())[key]
            raise ModelError(f"output={key} selects from a tuple; the model returned {type(raw)}")
        if isinstance(raw, Mapping):
            if key in raw:
                return raw[key]
            keys = list(raw.keys())
        elif dataclasses.is_dataclass(raw) and not isinstance(raw, type):
            if hasattr(raw, key):
                return getattr(raw, key)
            keys = [f.name for f in dataclasses.fields(raw)]
        elif isinstance(raw, tuple | list):
            raise ModelError(
                f"the model returns a {len(raw)}-tuple; choose the array to analyse with "
                "as_model(..., output=0) (a position) or output=callable"
            )
        else:
            raise ModelError(
                f"the model returns a {type(raw).__name__}, not an array; choose the array to "
                "analyse with as_model(..., output=key or callable)"
            )
        raise ModelError(
            f"the model's output has no {key!r}; its fields are {keys} — choose one with "
            "as_model(..., output=key) or output=callable"
        )


def output_selector(spec: str | int | Callable[[Any], Any] | None) -> OutputSelector:
    """An :class:`OutputSelector` for ``output=``."""
    return spec if isinstance(spec, OutputSelector) else OutputSelector(spec)
