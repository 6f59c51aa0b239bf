"""Orthogonalisation kernels shared by the Krylov methods (array-API generic).

Classical Gram–Schmidt against a basis ``V`` with orthonormal columns, repeated once when the
first pass cancelled most of the vector (the Daniel–Gragg–Kaufman–Stewart criterion ARPACK
uses: ``‖w'‖ < ‖w‖/√2``; "twice is enough": Giraud, Langou & Rozložník 2005), and a
breakdown-safe normalisation that replaces a vanished direction by a fresh random one
orthogonal to the basis.
"""

from __future__ import annotations

from typing import Any

import array_api_compat as compat
import numpy as np

from .. import _xp

Array = Any


#: DGKS threshold: a second pass when the first leaves less than this fraction of the norm
DGKS_ETA = 1 / np.sqrt(2)


def project_out(v_basis: Basis | Array | None, w: Array) -> tuple[Array, np.ndarray | None]:
    """``w − V (Vᵀ w)`` to working precision; returns it and the host coefficients ``Vᵀ w``.

    ``v_basis`` is an ``(n, k)`` array or a :class:`Basis` (whose JAX storage runs the pass as
    one compiled program, :mod:`._orth_jax`).

    A Krylov image ``A q_j`` has its large components along the newest basis columns (the
    three-term recurrence), so those are removed first — a cheap local pass over the last two
    columns — and one classical Gram–Schmidt pass over the whole basis follows; a second full
    pass runs only if that one cancelled more than the DGKS threshold. The component left in
    ``span V`` is then about ``eps · ‖w‖`` relative to the result, at most ``√2 · eps``. Each
    full pass reads the basis twice, which dominates a Krylov step on a large operator with a
    cheap product.
    """
    if isinstance(v_basis, Basis):
        if v_basis.size == 0:
            return w, None
        if v_basis.compiled:
            return v_basis.project(w)
        v_basis = v_basis.matrix
    if v_basis is None:
        return w, None
    xp = _xp.namespace(w)
    k = int(v_basis.shape[1])
    coef = np.zeros(k)
    if k > 2:
        tail = v_basis[:, k - 2 :]
        c = tail.T @ w
        w = _xp.minus_product(w, tail, c)
        coef[k - 2 :] += _xp.to_numpy(c)
    before = float(xp.linalg.vector_norm(w))
    for _ in range(2):
        c = v_basis.T @ w
        w = _xp.minus_product(w, v_basis, c)
        coef += _xp.to_numpy(c)
        after = float(xp.linalg.vector_norm(w))
        if after > DGKS_ETA * before:
            break
        before = after
    return w, coef


def normalize_or_restart(
    v_basis: Basis | Array | None, w: Array, reference: float, rng: _xp.Generator
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


class Basis:
    """Orthonormal Krylov basis columns with preallocated storage.

    NumPy, PyTorch and CuPy arrays get one ``(capacity, n)`` buffer whose rows are the basis
    vectors (contiguous writes and reads); :attr:`matrix` is its transposed view ``(n, size)``.
    Growing the basis or restarting it never copies it, so peak memory is about the basis
    itself. JAX arrays are immutable: they get a ``(capacity, n)`` buffer updated functionally,
    whose shape never changes, so :func:`project_out` on it is one compiled program
    (:attr:`compiled`) instead of a fresh compilation of every operation at every size. Other
    immutable arrays fall back to concatenation.

    ``limit`` (default ``capacity``) lets a writeable buffer start at ``capacity`` rows and
    grow, doubling, up to ``limit`` rows — for a basis that usually stays short but may not
    (the missed-eigenvalue check): a buffer allocated at its longest is a fresh memory map
    whose pages fault in as they are written, where a short one is reused from the heap
    (JAX allocates ``limit`` rows at once: its buffer's shape is compiled in). ``reuse``, a
    finished basis, hands over its buffer where it fits (:meth:`release`): the check after a
    solve then writes into pages already in memory.
    """

    def __init__(
        self, like: Array, capacity: int, limit: int | None = None, reuse: Basis | None = None
    ) -> None:
        self.xp = _xp.namespace(like)
        self.size = 0
        self.limit = int(capacity if limit is None else max(limit, capacity))
        self.capacity = int(capacity)
        n = int(like.shape[0])
        self._buf: Array | None = None
        self._rows: Array | None = None  # JAX: (capacity, n), rows past size masked
        self._cols: Array | None = None
        self.released = False
        device = _xp.device(like)
        spare = None if reuse is None else reuse.release(like, self.capacity)
        if spare is not None:
            self._buf = spare
            self.capacity = int(spare.shape[0])
            self.limit = max(self.limit, self.capacity)
        elif _xp.has_writeable_storage(like):
            # uninitialised: rows past ``size`` are never read, and untouched pages of a large
            # capacity cost no memory
            self._buf = self.xp.empty((self.capacity, n), dtype=like.dtype, device=device)
        elif compat.is_jax_array(like):
            self.capacity = self.limit
            self._rows = self.xp.zeros((self.capacity, n), dtype=like.dtype, device=device)

    def release(self, like: Array, rows: int) -> Array | None:
        """Give the writeable buffer to a new basis; ``None`` where it does not fit.

        The buffer fits a new basis of at least ``rows`` rows shaped like ``like``; this basis
        is then left empty and unusable. A finished solver's basis is free memory already in
        place: a new buffer of the same size would be fresh pages that fault in as the next
        basis writes them.
        """
        buf = self._buf
        if (
            buf is None
            or int(buf.shape[0]) < rows
            or int(buf.shape[1]) != int(like.shape[0])
            or buf.dtype != like.dtype
            or _xp.device(buf) != _xp.device(like)
        ):
            return None
        self._buf, self.size, self.capacity, self.released = None, 0, 0, True
        return buf

    @property
    def compiled(self) -> bool:
        """Whether :func:`project_out` runs as one compiled program on this basis (JAX)."""
        return self._rows is not None

    @property
    def matrix(self) -> Array | None:
        """The ``(n, size)`` matrix of columns (a view where storage is preallocated)."""
        if self.size == 0:
            return None
        if self._buf is not None:
            return self._buf[: self.size].T
        if self._rows is not None:
            return self._rows[: self.size].T
        return self._cols

    def column(self, i: int) -> Array:
        """Column ``i`` (on JAX by a dynamic index: one compiled program for every ``i``)."""
        if self._buf is not None:
            return self._buf[i]
        if self._rows is not None:
            import jax

            return jax.lax.dynamic_index_in_dim(self._rows, i, keepdims=False)
        return self._cols[:, i]

    def project(self, w: Array) -> tuple[Array, np.ndarray]:
        """:func:`project_out` on the compiled (JAX) storage; rows are read in blocks of 16."""
        from ._orth_jax import project_rows

        rows = min(self.capacity, -(-self.size // 16) * 16)
        view = self._rows if rows == self.capacity else self._rows[:rows]
        w, coef = project_rows(view, self.size, w, DGKS_ETA)
        return w, _xp.to_numpy(coef)[: self.size].astype(np.float64)

    def append(self, q: Array) -> None:
        """Add one column."""
        if self.released:
            raise RuntimeError("this Krylov basis gave its storage to another one")
        if self.size == self.capacity and self._buf is not None and self.capacity < self.limit:
            self._grow()
        if self.size == self.capacity and (self._buf is not None or self._rows is not None):
            raise RuntimeError("Krylov basis capacity exceeded")
        if self._buf is not None:
            self._buf[self.size] = q
        elif self._rows is not None:
            self._rows = self._rows.at[self.size].set(q)
        else:
            self._cols = (
                q[:, None]
                if self._cols is None
                else self.xp.concat([self._cols, q[:, None]], axis=1)
            )
        self.size += 1

    def _grow(self) -> None:
        """Double the writeable buffer's rows (at most to :attr:`limit`), keeping the columns."""
        assert self._buf is not None
        self.capacity = min(self.limit, 2 * self.capacity)
        old = self._buf
        self._buf = self.xp.empty(
            (self.capacity, int(old.shape[1])), dtype=old.dtype, device=_xp.device(old)
        )
        self._buf[: self.size] = old[: self.size]

    def combine(self, coefficients: np.ndarray) -> Array:
        """The rows ``Cᵀ Vᵀ`` (``k × n``) for a small host matrix ``C`` (``size × k``).

        Each row is one combination ``V c_j`` of the columns, stored contiguously: a product
        over the row-major buffer reads it once, and the combinations are then contiguous rows
        (``combine(C).T`` is ``V C`` with column-major layout).
        """
        current = self.matrix
        ct = _xp.from_host(coefficients, current).T
        if self._buf is not None:
            return ct @ self._buf[: self.size]
        if self._rows is not None:
            return ct @ self._rows[: self.size]
        return (current @ ct.T).T

    def rotate(self, coefficients: np.ndarray, *, block: int = 16384) -> None:
        """Replace the columns ``V`` by ``V C`` for a small host matrix ``C`` (``size × k``).

        With preallocated storage this is done in place, block of coordinates by block, so a
        thick restart needs no second ``n × k`` array.
        """
        k = int(coefficients.shape[1])
        current = self.matrix
        c = _xp.from_host(coefficients, current)
        if self._buf is not None:
            ct = c.T
            n = int(self._buf.shape[1])
            for c0 in range(0, n, block):
                c1 = min(n, c0 + block)
                self._buf[:k, c0:c1] = ct @ self._buf[: self.size, c0:c1]
        elif self._rows is not None:
            self._rows = self._rows.at[:k].set(c.T @ self._rows[: self.size])
        else:
            self._cols = current @ c
        self.size = k
