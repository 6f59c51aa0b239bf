"""Array-namespace helpers: the only module of the core that names backends.

Everything else in :mod:`specinterp` is written once against the Python array API standard
through :mod:`array_api_compat`; this module supplies what the standard leaves out —
namespace and device checks with clear errors, dtype queries, conversion to NumPy for
reporting, and a seeded random-number adapter (the standard has no RNG).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import array_api_compat as compat
import numpy as np

from .errors import DTypeError, EmptyInputError, NamespaceMismatchError, NonFiniteError, ShapeError

Array = Any
Namespace = Any

__all__ = [
    "Generator",
    "all_finite",
    "as_generator",
    "backend_name",
    "check_matrix",
    "device",
    "eps",
    "namespace",
    "to_numpy",
]


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


def all_finite(x: Array, xp: Namespace | None = None) -> bool | None:
    """Whether every entry of ``x`` is finite; ``None`` if ``x`` is traced (JAX ``jit``)."""
    xp = namespace(x) if xp is None else xp
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


class Generator:
    """A seeded random-number source that returns arrays of any namespace.

    Draws are made on the host by NumPy's PCG64 and then copied to the requested namespace,
    dtype and device, so one seed gives the *same* numbers on every backend (NumPy, PyTorch,
    JAX, CuPy, array-api-strict). That makes randomised algorithms reproducible across
    backends; the cost is one host-to-device copy per draw, small next to an operator product.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        ``None`` draws fresh OS entropy (not reproducible).
    xp : namespace
        Array namespace of the arrays to return.
    device : optional
        Device of the arrays to return (default: the namespace's default device).

    """

    def __init__(self, seed: int | np.random.Generator | None, xp: Namespace, device: Any = None):
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.xp = xp
        self.device = device

    def _wrap(self, values: np.ndarray, dtype: Any) -> Array:
        dtype = self.xp.float64 if dtype is None else dtype
        if self.device is None:
            return self.xp.asarray(values, dtype=dtype)
        return self.xp.asarray(values, dtype=dtype, device=self.device)

    def normal(self, shape: Sequence[int], dtype: Any = None, scale: float = 1.0) -> Array:
        """Independent ``N(0, scale²)`` entries."""
        return self._wrap(self._rng.normal(0.0, scale, size=tuple(shape)), dtype)

    def uniform(
        self, shape: Sequence[int], dtype: Any = None, low: float = 0.0, high: float = 1.0
    ) -> Array:
        """Independent uniform entries on ``[low, high)``."""
        return self._wrap(self._rng.uniform(low, high, size=tuple(shape)), dtype)

    def rademacher(self, shape: Sequence[int], dtype: Any = None) -> Array:
        """Independent ±1 entries with equal probability (drawn as bytes, row-major)."""
        signs = self._rng.integers(0, 2, size=tuple(shape), dtype=np.int8)
        return self._wrap(signs * np.int8(2) - np.int8(1), dtype)

    def sphere(self, shape: Sequence[int], dtype: Any = None, radius: float = 1.0) -> Array:
        """Vectors uniform on the sphere of ``radius`` along the last axis of ``shape``."""
        g = self._rng.normal(size=tuple(shape))
        g *= radius / np.linalg.norm(g, axis=-1, keepdims=True)
        return self._wrap(g, dtype)

    def spawn(self) -> Generator:
        """An independent child generator (NumPy's ``spawn``), same namespace and device."""
        return Generator(self._rng.spawn(1)[0], self.xp, self.device)


def as_generator(
    seed: int | np.random.Generator | Generator | None, xp: Namespace, device: Any = None
) -> Generator:
    """Coerce ``seed`` into a :class:`Generator` for ``xp`` on ``device``."""
    if isinstance(seed, Generator):
        return Generator(seed._rng, xp, device)
    if seed is not None and not isinstance(seed, int | np.integer | np.random.Generator):
        raise TypeError(
            f"seed must be an int, a numpy.random.Generator or None; got {type(seed).__name__}"
        )
    return Generator(seed, xp, device)


def safe_magnitudes(xp: Namespace, dtype: Any) -> tuple[float, float]:
    """``(tiny^¼, max^¼)`` of a float dtype: magnitudes whose squares and products are safe."""
    info = xp.finfo(dtype)
    return float(info.smallest_normal) ** 0.25, float(info.max) ** 0.25


def power_of_two_scaled(a: Array, xp: Namespace) -> tuple[Array, Array | None]:
    """``(a / 2^e, 2^e)`` per matrix of ``(..., m, n)`` with ``2^e ≈ max|a_ij|``, or ``(a, None)``.

    Dividing by a power of two is exact, so the singular values of the scaled matrices times
    ``2^e`` are those of ``a`` — but no decomposition ever sees entries near the over- or
    underflow thresholds (``σ_i²`` of a matrix with entries 1e±170 does not exist in float64).
    Matrices whose largest entry already lies in ``[tiny^¼, max^¼]`` of their dtype, and Dask
    arrays (deciding would compute them), are returned unscaled.
    """
    if compat.is_dask_namespace(xp):
        return a, None
    amax = xp.max(xp.abs(a), axis=(-2, -1))
    low, high = safe_magnitudes(xp, a.dtype)
    if concrete_bool(xp.all((amax >= low) & (amax <= high))):
        return a, None
    positive = amax > 0
    safe = xp.where(positive, amax, xp.ones_like(amax))
    scale = 2.0 ** xp.floor(xp.log2(safe))
    return a / scale[..., None, None], scale


#: aspect ratio from which singular values are read off the triangular factor of a QR first
QR_FIRST_ASPECT = 2


def svdvals(a: Array, xp: Namespace) -> Array:
    """Batched singular values ``(..., min(m, n))``, descending.

    Matrices at least twice as long as wide (per-sample Jacobians are ``C × d`` with ``C ≪ d``)
    go through a Householder QR of the tall orientation first and the SVD of its ``k × k``
    triangular factor (Chan's R-SVD; Golub & Van Loan §8.6): the same singular values to
    ``O(eps ‖A‖)`` — an orthogonal factor does not change them — at 2.5–4.5× less time than a
    batched ``gesdd`` of the ``k × n`` matrices (``python -m benchmarks spectra_overhead``).
    NumPy and PyTorch only (the ``mode="r"`` QR is not in the array API); a torch input that
    requires gradients keeps the direct SVD.

    Dask has no batched SVD: its chunks are rechunked to whole matrices and each block is
    decomposed by its own library (NumPy or CuPy), so the batch axes stay lazy and parallel.
    """
    if compat.is_dask_namespace(xp):
        real = xp.float32 if a.dtype in (xp.float32, xp.complex64) else xp.float64
        return _dask_blockwise(
            a,
            _direct_or_qr_svdvals,
            min(int(a.shape[-2]), int(a.shape[-1])),
            real,
        )
    return _direct_or_qr_svdvals(a)


def _direct_or_qr_svdvals(a: Array) -> Array:
    out = _rectangular_svdvals(a)
    return compat.array_namespace(a).linalg.svdvals(a) if out is None else out


def _rectangular_svdvals(a: Array) -> Array | None:
    """Singular values through the R factor of a QR, or ``None`` where that does not apply."""
    m, n = int(a.shape[-2]), int(a.shape[-1])
    if max(m, n) < QR_FIRST_ASPECT * min(m, n):
        return None
    if compat.is_numpy_array(a):
        r = np.linalg.qr(a if m >= n else np.swapaxes(a, -1, -2), mode="r")
        return np.linalg.svd(r, compute_uv=False)
    if compat.is_torch_array(a) and not a.requires_grad:
        import torch

        _, r = torch.linalg.qr(a if m >= n else a.mT, mode="r")
        return torch.linalg.svdvals(r)
    return None


def eigvalsh(a: Array, xp: Namespace) -> Array:
    """Batched eigenvalues ``(..., n)`` of symmetric matrices, ascending (Dask as in svdvals)."""
    if compat.is_dask_namespace(xp):
        return _dask_blockwise(
            a, lambda b: compat.array_namespace(b).linalg.eigvalsh(b), int(a.shape[-1]), a.dtype
        )
    return xp.linalg.eigvalsh(a)


def _dask_blockwise(a: Array, fn: Any, r: int, dtype: Any) -> Array:
    whole = a.rechunk({a.ndim - 2: -1, a.ndim - 1: -1})
    return whole.map_blocks(
        fn, drop_axis=a.ndim - 1, chunks=(*whole.chunks[:-2], (r,)), dtype=dtype
    )


def from_host(values: np.ndarray, like: Array) -> Array:
    """``values`` (a small NumPy array) in the namespace, dtype and device of ``like``.

    Used by the matrix-free algorithms for the small projected matrices they solve on the host.
    """
    xp = namespace(like)
    return xp.asarray(np.asarray(values), dtype=like.dtype, device=device(like))
