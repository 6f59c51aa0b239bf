"""SciPy's sparse matrices and ``LinearOperator``s as :class:`~.operator.LinearOperator`s.

Both are used through their products on NumPy vectors, never densified, so a sparse matrix
too large to hold densely runs through every solver. A sparse matrix's symmetry is decided
exactly (``max|A − Aᵀ| ≤ 100 · eps · max|A|`` over its stored entries); a SciPy operator's by
one random probe: ``|uᵀ(A v) − vᵀ(A u)| ≤ 100 · eps · ‖A u‖ ‖v‖`` for Gaussian ``u, v`` — an
operator that is not symmetric passes with probability zero. SciPy is imported only when
such an object is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _xp
from ..errors import DTypeError, NonFiniteError, ShapeError

__all__ = ["from_scipy", "is_scipy_operand"]


def is_scipy_operand(a: Any) -> bool:
    """Whether ``a`` is a SciPy sparse matrix / array or a SciPy ``LinearOperator``."""
    if not type(a).__module__.startswith("scipy."):
        return False
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla

    return sp.issparse(a) or isinstance(a, sla.LinearOperator)


def _dtype(a: Any) -> np.dtype:
    dtype = np.dtype(a.dtype) if a.dtype is not None else np.dtype(np.float64)
    if dtype.kind != "f" or dtype.itemsize < 4:
        raise DTypeError(
            f"the {type(a).__name__} has dtype {dtype}; a real floating dtype (float32 or "
            "float64) is needed — convert it first, e.g. a.astype(numpy.float64)"
        )
    return dtype


def from_scipy(a: Any, symmetric: bool | None) -> dict[str, Any]:
    """The keyword arguments of :class:`~.operator.LinearOperator` for ``a``."""
    import scipy.sparse as sp

    shape = tuple(int(s) for s in a.shape)
    if len(shape) != 2 or 0 in shape:
        raise ShapeError(f"an operator must be 2-d and non-empty; got shape {shape}")
    dtype = _dtype(a)
    xp = _xp.namespace(np.zeros(1, dtype=dtype))
    square = shape[0] == shape[1]
    if sp.issparse(a):
        a = a.tocsr()
        if not np.all(np.isfinite(a.data)):
            raise NonFiniteError(
                f"the sparse {shape[0]} × {shape[1]} matrix stores NaN or infinite entries; "
                "remove or impute them first"
            )
        if symmetric is None:
            big = float(abs(a).max()) if a.nnz else 0.0
            skew = float(abs(a - a.T).max()) if a.nnz and square else 0.0
            symmetric = square and skew <= 100 * np.finfo(dtype).eps * big
        at = a.T.tocsr()
        products = {
            "matvec": lambda v: a @ v,
            "matmat": lambda x: a @ x,
            "rmatvec": lambda u: at @ u,
            "rmatmat": lambda y: at @ y,
        }
    else:

        def rmatvec(u: Any) -> Any:
            try:
                return np.asarray(a.rmatvec(u), dtype=dtype).reshape(shape[1])
            except NotImplementedError as exc:
                raise ValueError(
                    f"the SciPy operator has no rmatvec (Aᵀ u), which this method needs; define "
                    f"rmatvec= when building it ({exc})"
                ) from None

        products = {
            "matvec": lambda v: np.asarray(a.matvec(v), dtype=dtype).reshape(shape[0]),
            "matmat": lambda x: np.asarray(a.matmat(x), dtype=dtype).reshape(shape[0], -1),
            "rmatvec": rmatvec,
        }
        if symmetric is None:
            symmetric = square and _probe_symmetric(products["matvec"], shape[0], dtype)
    return {"shape": shape, "dtype": dtype, "xp": xp, "symmetric": bool(symmetric), **products}


def _probe_symmetric(matvec: Any, n: int, dtype: np.dtype) -> bool:
    """One random probe of ``uᵀ A v = vᵀ A u`` (two products)."""
    rng = np.random.default_rng(0x5C1)
    u, v = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    au, av = matvec(u), matvec(v)
    norm = np.linalg.norm
    scale = float(norm(au) * norm(v) + norm(av) * norm(u))
    return abs(float(u @ av) - float(v @ au)) <= 100 * np.finfo(dtype).eps * scale
