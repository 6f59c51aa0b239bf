"""Adapters (PyTorch, JAX, hand-written array networks) that implement the Model protocol.

Installed as :mod:`specinterp.adapters`. Framework code lives only here; the adapters import the
core, never the other way round.
"""
