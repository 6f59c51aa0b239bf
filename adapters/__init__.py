"""Adapters that put PyTorch, JAX and hand-written array networks behind the Model protocol.

Installed as :mod:`specinterp.adapters`. Framework code lives only here; the adapters import
the core, never the other way round. Submodules are imported lazily by
:func:`specinterp.model.as_model`, so importing this package imports no framework.
"""

from specinterp.model import as_model

__all__ = ["as_model"]
