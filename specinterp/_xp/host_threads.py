"""One host BLAS thread for the small projected problems while another library runs the products.

A Krylov solver alternates an operator product — on a PyTorch, JAX or CuPy operator, work for
that library's own thread pool — with small host problems in NumPy (``eigh`` of the projected
``m × m`` matrix at every step, a few QRs). NumPy's OpenBLAS starts its own threads for those
and, like PyTorch's OpenMP pool, they spin for a while after each call: on a machine with few
cores the two pools take turns stealing the cores from each other. Measured on 2 cores, Hessian
top-20 of a 670k-parameter torch MLP: 6.5 s with NumPy's default threads, 2.9 s with one
(``python -m benchmarks host_threads``). A projected problem of at most a few hundred rows gains
nothing from threads, so the solvers run their host side with one BLAS thread when the operator
is not NumPy's (:func:`host_blas_single`). Only BLAS libraries that NumPy or SciPy load are
touched; the operator's library keeps its threads. Without ``threadpoolctl`` this is a no-op.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import array_api_compat as compat

__all__ = ["host_blas_single"]


@functools.cache
def _host_blas() -> Any:
    """A ``threadpoolctl`` controller for NumPy's and SciPy's BLAS, or ``None``."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return None
    import numpy  # noqa: F401  (its BLAS must be loaded before the controller looks)

    ctrl = ThreadpoolController().select(user_api="blas")
    own = [
        lib
        for lib in ctrl.lib_controllers
        if any(part in lib.filepath for part in ("numpy", "scipy"))
    ]
    if not own:
        return None
    return ctrl.select(filepath=[lib.filepath for lib in own])


def _runs_on_host_blas(xp: Any) -> bool:
    """Whether the products of namespace ``xp`` run on NumPy's BLAS themselves."""
    return (
        compat.is_numpy_namespace(xp)
        or compat.is_dask_namespace(xp)
        or compat.is_array_api_strict_namespace(xp)
    )


@contextlib.contextmanager
def host_blas_single(xp: Any) -> Iterator[None]:
    """Limit NumPy's (and SciPy's) BLAS to one thread while namespace ``xp`` runs the products.

    A no-op when ``xp`` is NumPy, Dask or array-api-strict — their products run on that same
    BLAS and need its threads — or when the limit cannot be set.
    """
    ctrl = None if _runs_on_host_blas(xp) else _host_blas()
    if ctrl is None:
        yield
        return
    with ctrl.limit(limits=1):
        yield
