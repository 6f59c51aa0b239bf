"""Orthogonalisation kernels shared by the Krylov methods (array-API generic).

Classical Gram–Schmidt applied twice ("twice is enough": Giraud, Langou & Rozložník 2005)
against a basis ``V`` with orthonormal columns, and a breakdown-safe normalisation that
replaces a vanished direction by a fresh random one orthogonal to the basis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _xp

Array = Any


def project_out(v_basis: Array | None, w: Array) -> tuple[Array, np.ndarray | None]:
    """``w − V (Vᵀ w)`` applied twice; returns the result and the host coefficients ``Vᵀ w``."""
    if v_basis is None:
        return w, None
    c = v_basis.T @ w
    w = w - v_basis @ c
    c2 = v_basis.T @ w
    w = w - v_basis @ c2
    return w, _xp.to_numpy(c + c2)


def normalize_or_restart(
    v_basis: Array | None, w: Array, reference: float, rng: _xp.Generator
) -> tuple[Array, float]:
    """Normalise the column ``w`` (already orthogonal to ``V``); return it and its norm.

    ``reference`` is the norm of the vector before orthogonalisation (``‖A q‖`` for a Krylov
    image). If ``‖w‖ ≤ 1e3 · eps · reference`` the direction lies in ``span V`` to working
    precision (an invariant subspace): the norm is reported as 0 and ``w`` is replaced by a
    random unit vector orthogonal to ``V``, so the iteration continues into the rest of the
    space without dividing by zero.
    """
    xp = _xp.namespace(w)
    beta = float(xp.linalg.vector_norm(w))
    if beta > 1e3 * _xp.eps(xp, w.dtype) * max(reference, np.finfo(float).tiny):
        return w / beta, beta
    for _ in range(3):
        fresh = rng.normal((int(w.shape[0]),), dtype=w.dtype)
        fresh, _ = project_out(v_basis, fresh)
        norm = float(xp.linalg.vector_norm(fresh))
        if norm > 1e-8:
            return fresh / norm, 0.0
    raise RuntimeError("could not find a direction orthogonal to the Krylov basis")
