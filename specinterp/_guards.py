"""Result guards shared by the model-level functions (docs: numerical guarantees)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._xp import all_finite, concrete_bool, is_array, namespace
from .errors import NonFiniteError

__all__ = ["finite_result"]


def finite_result(what: str, *, allow_inf: bool = False) -> Any:
    """Decorator: a function of finite inputs whose array result is NaN / ±inf raises.

    With ``allow_inf`` only NaN raises (for results where ``inf`` is a documented value).

    A network evaluated far outside its working range (inputs of 1e300) overflows; NumPy would
    warn and return ``inf``, torch and JAX return it silently. The result is checked instead, and
    :class:`NonFiniteError` says what overflowed (NumPy's own warnings are silenced inside).
    """

    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                out = fn(*args, **kwargs)
            first = out[0] if isinstance(out, tuple) else out
            if not is_array(first):
                return out
            xp = namespace(first)
            bad = (
                concrete_bool(xp.any(xp.isnan(first))) if allow_inf else all_finite(first) is False
            )
            if bad:
                raise NonFiniteError(
                    f"the {what} has NaN or infinite entries although the inputs are finite: the "
                    "model overflows at these inputs — scale them into the model's working range"
                )
            return out

        return guarded

    return wrap
