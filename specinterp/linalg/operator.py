"""``LinearOperator``: a matrix known only through its products, on any array namespace.

The algorithms of :mod:`specinterp.linalg` (:ref:`theory-algorithms`) touch an operator only through
``matmat`` (``A X``) and ``rmatmat`` (``Aᵀ X``). An operator built from a single-vector product
gets a column-by-column ``matmat``; a model-level operator (Jacobian, NTK, Hessian) supplies a
batched one. Shapes, namespaces and dtypes of inputs are checked on every product.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _xp
from ..errors import DTypeError, ShapeError
from ._scipy import from_scipy, is_scipy_operand

Array = Any
Product = Callable[[Array], Array]

__all__ = ["LinearOperator", "aslinearoperator"]


class LinearOperator:
    """An ``m × n`` real linear operator given by its products.

    Parameters
    ----------
    shape : (m, n)
    matvec : callable, optional
        ``v ↦ A v`` for ``v`` of shape ``(n,)``. At least one of ``matvec`` / ``matmat``.
    rmatvec : callable, optional
        ``u ↦ Aᵀ u``; not needed when ``symmetric``.
    matmat, rmatmat : callable, optional
        Batched products ``X ↦ A X`` (``X`` of shape ``(n, k)``) and ``Y ↦ Aᵀ Y``; derived
        column by column from ``matvec`` / ``rmatvec`` when absent.
    dtype : dtype, optional
        Real floating dtype of the operator (default: float64 of ``xp``).
    xp : namespace, optional
        Array namespace of its inputs and outputs (default: NumPy, as SciPy's ``xp=``).
    device : optional
        Device of its inputs and outputs (default: the namespace's default device).
    symmetric : bool
        ``A = Aᵀ``: then ``rmatvec = matvec`` and :func:`~specinterp.linalg.eigsh` applies.
    positive_semidefinite : bool
        ``A ⪰ 0`` (implies ``symmetric``).

    Notes
    -----
    ``A @ x`` applies the operator to a vector or a matrix; ``A @ B``, ``A + B``, ``c * A`` and
    ``A.T`` build new operators without materialising anything, and keep the structure that
    the algebra guarantees: ``B.T @ B`` and ``B @ B.T`` are symmetric positive semi-definite,
    sums of symmetric (PSD) operators are symmetric (PSD), and ``c * A`` keeps symmetry and, for
    ``c ≥ 0``, positive semi-definiteness.

    """

    def __init__(
        self,
        shape: tuple[int, int],
        matvec: Product | None = None,
        *,
        rmatvec: Product | None = None,
        matmat: Product | None = None,
        rmatmat: Product | None = None,
        dtype: Any = None,
        xp: Any = None,
        device: Any = None,
        symmetric: bool = False,
        positive_semidefinite: bool = False,
    ) -> None:
        if len(shape) != 2 or min(int(shape[0]), int(shape[1])) < 1:
            raise ShapeError(f"shape must be (m, n) with m, n ≥ 1; got {shape}")
        if matvec is None and matmat is None:
            raise TypeError("give matvec (v ↦ A v) or matmat (X ↦ A X)")
        if symmetric and int(shape[0]) != int(shape[1]):
            raise ShapeError(f"a symmetric operator must be square; got shape {shape}")
        if xp is None:
            xp = _xp.default_namespace()
        if _xp.is_lazy(xp):
            raise TypeError(
                "the matrix-free algorithms need in-memory arrays: a Dask graph would grow with "
                "every Krylov step. Use NumPy or CuPy arrays (e.g. x.compute()), or Dask for the "
                "batched dense statistics of specinterp.spectra"
            )
        self.shape = (int(shape[0]), int(shape[1]))
        self.xp = xp
        self.dtype = xp.float64 if dtype is None else dtype
        if not xp.isdtype(self.dtype, "real floating"):
            raise DTypeError(f"operator dtype must be real floating; got {self.dtype}")
        self.device = device
        self.symmetric = bool(symmetric) or bool(positive_semidefinite)
        self.positive_semidefinite = bool(positive_semidefinite)
        #: the operator this one was built as the adjoint of (``A.T`` remembers ``A``)
        self.adjoint_of: LinearOperator | None = None
        self._matvec, self._matmat = matvec, matmat
        if self.symmetric:
            rmatvec = rmatvec or matvec
            rmatmat = rmatmat or matmat
        self._rmatvec, self._rmatmat = rmatvec, rmatmat

    # ------------------------------------------------------------------ checks
    def _check(self, x: Array, size: int, ndim: int, what: str) -> None:
        xp_x = _xp.namespace(x)
        if xp_x is not self.xp and not _xp.same_namespace(xp_x, self.xp):
            raise _xp.NamespaceMismatchError(
                f"{what} is a {_xp.backend_name(_xp.namespace(x))} array but the operator works "
                f"on {_xp.backend_name(self.xp)} arrays; convert it explicitly"
            )
        if x.ndim != ndim or int(x.shape[0]) != size:
            want = f"({size},)" if ndim == 1 else f"({size}, k)"
            raise ShapeError(
                f"{what} must have shape {want} for an operator of shape {self.shape}; "
                f"got {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            raise DTypeError(
                f"{what} has dtype {x.dtype} but the operator has dtype {self.dtype}; "
                "cast it explicitly (no silent up- or down-cast)"
            )

    # ------------------------------------------------------------------ products
    def matvec(self, v: Array) -> Array:
        """``A v`` for ``v`` of shape ``(n,)``."""
        self._check(v, self.shape[1], 1, "v")
        if self._matvec is not None:
            return self._matvec(v)
        return self._matmat(v[:, None])[:, 0]

    def matmat(self, x: Array) -> Array:
        """``A X`` for ``X`` of shape ``(n, k)``."""
        self._check(x, self.shape[1], 2, "X")
        if self._matmat is not None:
            return self._matmat(x)
        # walk contiguous rows of Xᵀ (columns of a row-major X are strided), stack as rows
        rows = _xp.contiguous(x.T)
        return self.xp.stack([self._matvec(rows[j, ...]) for j in range(int(x.shape[1]))]).T

    def _need_adjoint(self) -> None:
        if self._rmatvec is None and self._rmatmat is None:
            raise NotImplementedError(
                "this operator has no adjoint product; pass rmatvec= (u ↦ Aᵀ u) or "
                "symmetric=True when A = Aᵀ"
            )

    def rmatvec(self, u: Array) -> Array:
        """``Aᵀ u`` for ``u`` of shape ``(m,)``."""
        self._need_adjoint()
        self._check(u, self.shape[0], 1, "u")
        if self._rmatvec is not None:
            return self._rmatvec(u)
        return self._rmatmat(u[:, None])[:, 0]

    def rmatmat(self, y: Array) -> Array:
        """``Aᵀ Y`` for ``Y`` of shape ``(m, k)``."""
        self._need_adjoint()
        self._check(y, self.shape[0], 2, "Y")
        if self._rmatmat is not None:
            return self._rmatmat(y)
        rows = _xp.contiguous(y.T)
        return self.xp.stack([self._rmatvec(rows[j, ...]) for j in range(int(y.shape[1]))]).T

    # ------------------------------------------------------------------ algebra
    def adjoint(self) -> LinearOperator:
        """The operator ``Aᵀ`` (needs ``rmatvec``/``rmatmat`` unless symmetric)."""
        if self.symmetric:
            return self
        self._need_adjoint()
        adj = LinearOperator(
            (self.shape[1], self.shape[0]),
            matvec=self._rmatvec,
            matmat=self._rmatmat,
            rmatvec=self._matvec,
            rmatmat=self._matmat,
            dtype=self.dtype,
            xp=self.xp,
            device=self.device,
        )
        adj.adjoint_of = self
        return adj

    @property
    def T(self) -> LinearOperator:
        """Alias of :meth:`adjoint`."""
        return self.adjoint()

    def _same_space(self, other: LinearOperator, how: str) -> None:
        if not _xp.same_namespace(other.xp, self.xp) or other.dtype != self.dtype:
            raise DTypeError(
                f"cannot {how} operators on {_xp.backend_name(self.xp)}/{self.dtype} and "
                f"{_xp.backend_name(other.xp)}/{other.dtype}"
            )

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, LinearOperator):
            return self._compose(other)
        return self.matvec(other) if other.ndim == 1 else self.matmat(other)

    def _compose(self, other: LinearOperator) -> LinearOperator:
        if self.shape[1] != other.shape[0]:
            raise ShapeError(f"cannot compose shapes {self.shape} and {other.shape}")
        self._same_space(other, "compose")
        has_adj = all(op._rmatvec or op._rmatmat for op in (self, other))
        gram = self.adjoint_of is other or other.adjoint_of is self  # Bᵀ B or B Bᵀ
        return LinearOperator(
            (self.shape[0], other.shape[1]),
            matmat=lambda x: self.matmat(other.matmat(x)),
            rmatmat=(lambda y: other.rmatmat(self.rmatmat(y))) if has_adj else None,
            dtype=self.dtype,
            xp=self.xp,
            device=self.device,
            positive_semidefinite=gram,
        )

    def __add__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        if self.shape != other.shape:
            raise ShapeError(f"cannot add shapes {self.shape} and {other.shape}")
        self._same_space(other, "add")
        has_adj = all(op._rmatvec or op._rmatmat for op in (self, other))
        return LinearOperator(
            self.shape,
            matmat=lambda x: self.matmat(x) + other.matmat(x),
            rmatmat=(lambda y: self.rmatmat(y) + other.rmatmat(y)) if has_adj else None,
            dtype=self.dtype,
            xp=self.xp,
            device=self.device,
            symmetric=self.symmetric and other.symmetric,
            positive_semidefinite=self.positive_semidefinite and other.positive_semidefinite,
        )

    def __sub__(self, other: LinearOperator) -> LinearOperator:
        return self + (-1.0) * other

    def __mul__(self, scalar: float) -> LinearOperator:
        if not isinstance(scalar, int | float):
            return NotImplemented
        c = float(scalar)
        has_adj = self._rmatvec is not None or self._rmatmat is not None
        return LinearOperator(
            self.shape,
            matmat=lambda x: c * self.matmat(x),
            rmatmat=(lambda y: c * self.rmatmat(y)) if has_adj else None,
            dtype=self.dtype,
            xp=self.xp,
            device=self.device,
            symmetric=self.symmetric,
            positive_semidefinite=self.positive_semidefinite and c >= 0,
        )

    __rmul__ = __mul__

    def __neg__(self) -> LinearOperator:
        return (-1.0) * self

    def __repr__(self) -> str:
        kind = "PSD " if self.positive_semidefinite else "symmetric " if self.symmetric else ""
        return (
            f"<{self.shape[0]}×{self.shape[1]} {kind}LinearOperator on "
            f"{_xp.backend_name(self.xp)} {self.dtype}>"
        )


def aslinearoperator(a: Array, *, symmetric: bool | None = None) -> LinearOperator:
    """Wrap a dense ``m × n`` array (any namespace) as a :class:`LinearOperator`.

    ``symmetric=None`` detects symmetry: ``max|A − Aᵀ| ≤ 100 · eps · max|A|``.
    An existing ``LinearOperator`` is returned unchanged. A SciPy sparse matrix (any format)
    or SciPy ``LinearOperator`` is used through its products on NumPy vectors, never densified
    (its symmetry detected from its entries, or an operator's by one random probe).
    """
    if isinstance(a, LinearOperator):
        return a
    if is_scipy_operand(a):
        return LinearOperator(**from_scipy(a, symmetric))
    xp = _xp.check_matrix(a, "dense operator")
    if a.ndim != 2:
        raise ShapeError(f"a dense operator must be 2-d; got shape {tuple(a.shape)}")
    if symmetric is None:
        symmetric = a.shape[0] == a.shape[1] and bool(
            xp.max(xp.abs(a - a.T)) <= 100 * _xp.eps(xp, a.dtype) * xp.max(xp.abs(a))
        )
    return LinearOperator(
        tuple(a.shape),
        matvec=lambda v: a @ v,
        matmat=lambda x: a @ x,
        rmatvec=lambda u: a.T @ u,
        rmatmat=lambda y: a.T @ y,
        dtype=a.dtype,
        xp=xp,
        device=_xp.device(a),
        symmetric=symmetric,
    )
