"""Symmetric operators that vanish outside a known subspace: ``A = L Ã Lᵀ``.

``L`` (``n × m``, ``m < n``) has orthonormal columns and ``A`` is zero on the orthogonal
complement of its range. Then the spectrum of ``A`` is that of the ``m × m`` operator ``Ã``
together with ``n − m`` zeros, and ``A (L y) = L (Ã y)``: an eigenpair ``(θ, y)`` of ``Ã`` is
the eigenpair ``(θ, L y)`` of ``A`` with the same residual norm (``L`` is an isometry)
(:ref:`theory-compression`). The Hessian of an MLP whose first dense layer sees fewer samples
than it has inputs is such an operator (:ref:`theory-mlp-hvp`); :func:`~specinterp.linalg.eigsh`
then works on ``Ã``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .. import _xp
from .operator import LinearOperator
from .results import EigResult

Array = Any

__all__ = ["Compression", "compression_of", "weight_block_maps"]


@dataclass(frozen=True)
class Compression:
    """``A = L Ã Lᵀ`` with ``L`` an isometry.

    ``operator`` is ``Ã``, ``lift`` is ``y ↦ L y`` (a vector ``(m,)``) and ``restrict`` is
    ``v ↦ Lᵀ v``.
    """

    operator: LinearOperator
    lift: Callable[[Array], Array]
    restrict: Callable[[Array], Array]


def weight_block_maps(q: Array, rows: int, start: int) -> tuple[Callable, Callable]:
    """``(lift, restrict)`` of the isometry ``L`` that changes one weight block's coordinates.

    The flat vectors' entries ``start:`` hold a ``rows × d`` weight ``W`` (row-major) in the
    whole space and a ``rows × m`` block ``M`` in the compressed one, with ``W = M Qᵀ`` for
    ``Q`` (``d × m``) with orthonormal columns; every other entry is kept. ``L`` is an isometry
    because right-multiplication by ``Qᵀ`` preserves the Frobenius norm on ``rows × m`` blocks.
    """
    xp = _xp.namespace(q)
    d, m = (int(s) for s in q.shape)

    def lift(u: Array) -> Array:
        block = xp.reshape(xp.reshape(u[start : start + rows * m], (rows, m)) @ q.T, (-1,))
        return xp.concat([u[:start], block, u[start + rows * m :]])

    def restrict(v: Array) -> Array:
        block = xp.reshape(xp.reshape(v[start : start + rows * d], (rows, d)) @ q, (-1,))
        return xp.concat([v[:start], block, v[start + rows * d :]])

    return lift, restrict


def compression_of(op: LinearOperator) -> Compression | None:
    """``op.compression()`` where the operator offers one (a model's Hessian), else ``None``."""
    get = getattr(op, "compression", None)
    return get() if callable(get) else None


def beyond_zero(result: EigResult, which: str) -> bool:
    """Whether the ``k`` eigenvalues ``Ã`` gave are ``A``'s: none of ``A``'s zeros is wanted.

    For ``"LA"`` the ``k``-th largest Ritz value is at most ``λ_k(Ã)`` (Cauchy interlacing),
    so ``θ_k > 0`` shows ``λ_k(Ã) > 0``: the zeros come after. ``"SA"`` likewise with signs
    reversed.
    """
    last = float(result.values[-1])
    return last > 0 if which == "LA" else last < 0


def lifted(result: EigResult, comp: Compression, xp: Any) -> EigResult:
    """The eigenpairs of ``A`` from those of ``Ã``: vectors lifted, values and residuals kept."""
    if result.vectors is None:
        return result
    k = int(result.vectors.shape[1])
    vectors = xp.stack([comp.lift(result.vectors[:, j]) for j in range(k)], axis=1)
    return replace(result, vectors=vectors)
