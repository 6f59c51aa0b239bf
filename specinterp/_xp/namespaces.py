"""Array namespaces: which library an array belongs to, its device, checks and conversions.

The rest of the core never names a backend; it asks these helpers.
"""

from __future__ import annotations

import collections
import warnings
import weakref
from typing import Any

import array_api_compat as compat
import numpy as np

from ..errors import DTypeError, EmptyInputError, NamespaceMismatchError, NonFiniteError, ShapeError

Array = Any
Namespace = Any


def namespace(*arrays: Array) -> Namespace:
    """Return the array-API namespace shared by ``arrays``.

    Raises
    ------
    NamespaceMismatchError
        If the arrays come from different libraries.
    TypeError
        If an argument is not an array (a list, a Python scalar).

    """
    arrays = tuple(a for a in arrays if a is not None)
    for a in arrays:
        if not compat.is_array_api_obj(a):
            if type(a).__module__.startswith("scipy.sparse"):  # asarray would wrap, not densify
                raise TypeError(
                    f"expected a dense array, got a SciPy sparse {type(a).__name__}; the solvers "
                    "of specinterp.linalg (eigsh, svds, trace, spectral_density) take it as it "
                    "is, and .toarray() densifies a small one"
                )
            raise TypeError(
                f"expected an array (numpy, torch, jax, cupy, ...), got {type(a).__name__}; "
                "convert it first, e.g. with numpy.asarray(x, dtype=float)"
            )
    try:
        return compat.array_namespace(*arrays)
    except TypeError as exc:
        names = sorted({type(a).__module__.split(".")[0] for a in arrays})
        raise NamespaceMismatchError(
            f"arrays from different libraries were mixed ({', '.join(names)}); "
            "convert them to one library and device before the call"
        ) from exc


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of a library the array API covers (torch tensors included)."""
    return bool(compat.is_array_api_obj(x))


def backend_name(xp: Namespace) -> str:
    """Short name of the library behind ``xp`` (``"numpy"``, ``"torch"``, ``"jax"``, ...)."""
    for name, test in (
        ("numpy", compat.is_numpy_namespace),
        ("torch", compat.is_torch_namespace),
        ("jax", compat.is_jax_namespace),
        ("cupy", compat.is_cupy_namespace),
        ("dask", compat.is_dask_namespace),
        ("array_api_strict", compat.is_array_api_strict_namespace),
    ):
        if test(xp):
            return name
    return getattr(xp, "__name__", str(xp))


def device(x: Array) -> Any:
    """The device ``x`` lives on, in its own library's terms."""
    return compat.device(x)


def check_same_device(*arrays: Array) -> None:
    """Raise :class:`NamespaceMismatchError` if the arrays live on different devices."""
    devices = [device(a) for a in arrays if a is not None]
    if any(d != devices[0] for d in devices[1:]):
        raise NamespaceMismatchError(
            f"arrays live on different devices ({', '.join(map(str, devices))}); "
            "move them to one device explicitly before the call"
        )


def eps(xp: Namespace, dtype: Any) -> float:
    """Machine epsilon of a real floating ``dtype``."""
    return float(xp.finfo(dtype).eps)


def to_numpy(x: Array) -> np.ndarray:
    """An explicit host copy of ``x`` as a NumPy array (for reports and tests).

    This is the one place data leaves its device on purpose; library computations never call it
    on their inputs.
    """
    if isinstance(x, np.ndarray | np.generic):
        return np.asarray(x)
    if compat.is_torch_array(x):
        x = x.detach().cpu()
        return (x.float() if x.dtype == x.new_empty(0).bfloat16().dtype else x).numpy()
    if compat.is_cupy_array(x):
        return x.get()
    if compat.is_dask_array(x):
        return np.asarray(x.compute())
    if compat.is_array_api_strict_namespace(compat.array_namespace(x)):
        return np.from_dlpack(x)
    return np.asarray(x)


def contiguous(x: Array) -> Array:
    """``x`` with a row-major memory layout (a copy only where the layout is strided).

    Column slices of a row-major ``(n, k)`` block are strided; products that walk them one at
    a time (autograd cotangents, BLAS vectors) run several times slower than on contiguous rows.
    Namespaces without a layout notion (JAX, array-api-strict, Dask) return ``x`` itself.
    """
    if compat.is_numpy_array(x):
        return np.ascontiguousarray(x)
    if compat.is_torch_array(x):
        return x.contiguous()
    if compat.is_cupy_array(x):
        import cupy

        return cupy.ascontiguousarray(x)
    return x


def concrete_bool(flag: Array) -> bool | None:
    """``bool(flag)`` for a 0-d boolean array; ``None`` if it is traced (JAX ``jit``)."""
    try:
        return bool(flag)
    except Exception:  # a tracer under jax.jit / torch.compile: no concrete value to check
        return None


#: weak references to the last JAX arrays found finite: JAX arrays are immutable, each check
#: waits for the device, and one call (jacobian_spectra, gmsi) checks its batch several times
_FINITE_JAX: collections.deque = collections.deque(maxlen=4)


def all_finite(x: Array, xp: Namespace | None = None) -> bool | None:
    """Whether every entry of ``x`` is finite; ``None`` if ``x`` is traced (JAX ``jit``)."""
    xp = namespace(x) if xp is None else xp
    jax_array = compat.is_jax_array(x)
    if jax_array and any(ref() is x for ref in _FINITE_JAX):
        return True
    out = _all_finite(x, xp)
    if jax_array and out:
        _FINITE_JAX.append(weakref.ref(x))
    return out


def _all_finite(x: Array, xp: Namespace) -> bool | None:
    # Fast path: one reduction. A finite sum proves every entry finite (a NaN or ±inf entry makes
    # the sum NaN or ±inf); a non-finite sum may be overflow of finite entries, so re-check.
    with warnings.catch_warnings():  # NumPy warns when the sum overflows; that case is handled
        warnings.simplefilter("ignore", RuntimeWarning)
        fast = concrete_bool(xp.isfinite(xp.sum(x)))
    if fast is None or fast:
        return fast
    return concrete_bool(xp.all(xp.isfinite(x)))


def check_real_floating(x: Array, xp: Namespace, what: str = "input") -> None:
    """Raise :class:`DTypeError` unless ``x`` has a real floating dtype."""
    if not xp.isdtype(x.dtype, "real floating"):
        raise DTypeError(
            f"{what} has dtype {x.dtype}; a real floating dtype is needed — "
            "convert it first, e.g. x.astype(float64) or torch.as_tensor(x, dtype=torch.float64)"
        )


def check_working_precision(x: Array, xp: Namespace, what: str = "input") -> None:
    """Raise :class:`DTypeError` for half-precision floats (float16, bfloat16).

    Decompositions (SVD, eigh, QR) exist only in float32 and float64 on most backends, and
    half precision (3 significant digits) cannot hold the statistics it would feed; the cast
    is left to the caller, so that no data are upcast silently.
    """
    if xp.finfo(x.dtype).bits < 32:
        raise DTypeError(
            f"{what} has dtype {x.dtype} (half precision); spectra are computed in float32 or "
            "float64 — cast explicitly first, e.g. x.astype(float32) or x.float()"
        )


def check_parameter_precision(dtype: Any, xp: Namespace) -> None:
    """Raise :class:`DTypeError` for a model whose parameters are half precision.

    Its Jacobians and curvature would be computed, and decomposed, at 3 significant digits (or
    fail inside a decomposition that has no half-precision kernel); the model is converted by
    its owner, not silently here.
    """
    if xp.isdtype(dtype, "real floating") and xp.finfo(dtype).bits < 32:
        raise DTypeError(
            f"the model's parameters are {dtype} (half precision); spectra are computed in "
            "float32 or float64 — convert the model first (torch: model.float(); JAX or "
            "arraynet: cast the parameters)"
        )


def check_finite(x: Array, xp: Namespace, what: str = "input") -> None:
    """Raise :class:`NonFiniteError` if ``x`` holds NaN or ±inf (skipped for traced arrays)."""
    if all_finite(x, xp) is False:
        raise NonFiniteError(
            f"{what} contains NaN or infinite entries; remove or impute them first "
            "(e.g. check the model's outputs for overflow)"
        )


def check_matrix(a: Array, what: str = "input", *, square: bool = False) -> Namespace:
    """Validate a (batch of) real, finite, non-empty matrices ``(..., m, n)``; return its namespace.

    Raises
    ------
    ShapeError, EmptyInputError, DTypeError, NonFiniteError
        With a message that says how to fix the input.

    """
    xp = namespace(a)
    if a.ndim < 2:
        raise ShapeError(
            f"{what} must be a matrix or a batch of matrices with shape (..., m, n); got "
            f"{a.ndim}-d shape {tuple(a.shape)}. Reshape a vector v to a matrix with v[None, :]"
        )
    if any(int(s) == 0 for s in a.shape):
        raise EmptyInputError(
            f"{what} has shape {tuple(a.shape)} with a zero-length axis; "
            "pass at least one non-empty matrix"
        )
    if square and a.shape[-1] != a.shape[-2]:
        raise ShapeError(
            f"{what} must be square (..., n, n) for a symmetric eigenvalue problem; "
            f"got {tuple(a.shape)}"
        )
    check_real_floating(a, xp, what)
    check_working_precision(a, xp, what)
    check_finite(a, xp, what)
    return xp


def from_host(values: np.ndarray, like: Array) -> Array:
    """``values`` (a small NumPy array) in the namespace, dtype and device of ``like``.

    Used by the matrix-free algorithms for the small projected matrices they solve on the host.
    """
    xp = namespace(like)
    return xp.asarray(np.asarray(values), dtype=like.dtype, device=device(like))


def default_namespace() -> Namespace:
    """The namespace used where the caller gives none: NumPy (through array-api-compat)."""
    import array_api_compat.numpy as xnp

    return xnp


def same_namespace(xp_a: Namespace, xp_b: Namespace) -> bool:
    """Whether two namespaces are the same library (wrapped or not)."""
    return backend_name(xp_a) == backend_name(xp_b)


def is_lazy(xp: Namespace) -> bool:
    """Whether ``xp`` builds task graphs instead of computing (Dask)."""
    return bool(compat.is_dask_namespace(xp))


def has_writeable_storage(like: Array) -> bool:
    """Whether arrays like ``like`` can be written in place (not JAX, not array-api-strict)."""
    return bool(
        compat.is_writeable_array(like)
        and not compat.is_array_api_strict_namespace(compat.array_namespace(like))
    )
