"""Exceptions raised on bad input.

Every exception subclasses both :class:`SpecinterpError` and the built-in exception a caller
would expect (``ValueError`` or ``TypeError``), so ``except ValueError`` keeps working.
Messages say what was wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "DTypeError",
    "DataError",
    "EmptyInputError",
    "LabelError",
    "MemoryBudgetError",
    "ModelError",
    "NamespaceMismatchError",
    "NonFiniteError",
    "ShapeError",
    "SpecinterpError",
    "ZeroSpectrumError",
]


class SpecinterpError(Exception):
    """Base class of every error specinterp raises on purpose."""


class NonFiniteError(SpecinterpError, ValueError):
    """The input holds NaN or infinite entries."""


class DTypeError(SpecinterpError, TypeError):
    """The input has an integer, boolean or complex dtype where a real float is needed."""


class ShapeError(SpecinterpError, ValueError):
    """The input has the wrong number of axes or an unusable shape."""


class EmptyInputError(SpecinterpError, ValueError):
    """The input has a zero-length axis (an empty batch or an empty matrix)."""


class LabelError(SpecinterpError, ValueError):
    """Targets hold class labels outside ``[0, C)`` for a model with ``C`` outputs."""


class ZeroSpectrumError(SpecinterpError, ValueError):
    """A zero matrix has no spectral distribution (entropy, effective rank, κ_attr)."""


class NamespaceMismatchError(SpecinterpError, TypeError):
    """Arrays from different libraries (or devices) were mixed in one call."""


class MemoryBudgetError(SpecinterpError, MemoryError):
    """A dense matrix was requested that would exceed the memory budget."""


class ModelError(SpecinterpError, TypeError):
    """An object could not be used as a model, or a model is in an unusable state."""


class DataError(SpecinterpError, ValueError):
    """Data that cannot serve as batches of an operator (not replayable, malformed)."""
