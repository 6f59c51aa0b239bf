"""Shared fixtures: the ``xp`` backend fixture and Hypothesis profiles.

Every backend test builds its inputs in NumPy float64 (the reference), converts them with
``backend.asarray`` and compares the results, converted back with ``backend.to_numpy``, against
an independent NumPy/SciPy float64 computation with the backend's stated tolerance.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from specinterp import _xp


def _hide_a_broken_torchvision() -> None:
    """Hide a torchvision that cannot load with the installed torch.

    The benchmarks' peers (curvlinops through backpack) pull a torchvision built for another
    torch; once it is on the machine, ``import transformers`` fails inside torchvision. The
    test environment the README installs has no torchvision, so the tests run as if it had
    none — with a warning that says what to remove.
    """
    if importlib.util.find_spec("torchvision") is None:
        return
    try:
        import torchvision  # noqa: F401
    except Exception as err:  # its C++ operators do not register on this torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # type: ignore[assignment]  # find_spec → None
        warnings.warn(
            f"torchvision is installed but does not load with this torch ({err}); the tests "
            "run without it — `python -m pip uninstall -y torchvision` removes it",
            stacklevel=1,
        )


_hide_a_broken_torchvision()

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile(
    "dev",
    max_examples=300,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@dataclass(frozen=True)
class Backend:
    """One array backend under test, with its dtype and the tolerance results are held to."""

    name: str
    xp: Any
    dtype: Any
    rtol: float
    device: Any = None

    def asarray(self, a: np.ndarray) -> Any:
        a = np.asarray(a, dtype=np.float64)
        if self.name == "dask":  # split the batch axes (or a vector) into two chunks each
            import dask.array as da

            if a.ndim == 0:
                return da.from_array(a)
            lead = a.shape[:-2] if a.ndim >= 2 else a.shape
            chunks = tuple(max(1, (s + 1) // 2) for s in lead) + (-1,) * (a.ndim - len(lead))
            return da.from_array(a, chunks=chunks)
        if self.device is not None:
            return self.xp.asarray(a, dtype=self.dtype, device=self.device)
        return self.xp.asarray(a, dtype=self.dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(_xp.to_numpy(a), dtype=np.float64)

    @property
    def is_float64(self) -> bool:
        return self.rtol < 1e-9


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _numpy() -> Backend:
    import array_api_compat.numpy as xp

    return Backend("numpy", xp, xp.float64, 1e-10)


def _strict() -> Backend:
    import array_api_strict as xp

    return Backend("array_api_strict", xp, xp.float64, 1e-10)


def _torch64() -> Backend:
    import array_api_compat.torch as xp

    return Backend("torch-float64", xp, xp.float64, 1e-10)


def _torch32() -> Backend:
    import array_api_compat.torch as xp

    return Backend("torch-float32", xp, xp.float32, 2e-4)


def _torch_cuda() -> Backend:
    import array_api_compat.torch as xp

    return Backend("torch-cuda", xp, xp.float64, 1e-10, device="cuda")


def _cuda_available() -> bool:
    if not _has("torch"):
        return False
    import torch

    return torch.cuda.is_available()


def _jax() -> Backend:
    import jax

    jax.config.update("jax_enable_x64", True)  # test setup only; the library never flips it
    import jax.numpy as xp

    return Backend("jax", xp, xp.float64, 1e-10)


def _cupy() -> Backend:
    import array_api_compat.cupy as xp

    return Backend("cupy", xp, xp.float64, 1e-10)


def _cupy_available() -> bool:
    if not _has("cupy"):
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _dask() -> Backend:
    import array_api_compat.dask.array as xp

    return Backend("dask", xp, xp.float64, 1e-10)


_BACKENDS = [
    ("numpy", _numpy, lambda: True),
    ("array_api_strict", _strict, lambda: _has("array_api_strict")),
    ("torch-float64", _torch64, lambda: _has("torch")),
    ("torch-float32", _torch32, lambda: _has("torch")),
    ("torch-cuda", _torch_cuda, _cuda_available),
    ("jax", _jax, lambda: _has("jax")),
    ("cupy", _cupy, _cupy_available),
    ("dask", _dask, lambda: _has("dask")),
]

# Dask serves the batched dense statistics (chunks over the batch axes); the matrix-free
# algorithms need in-memory arrays and say so. Tests of those use ``xp_eager``.
_LAZY = {"dask"}


def _make(name: str) -> Backend:
    _, make, available = next(b for b in _BACKENDS if b[0] == name)
    if not available():
        pytest.skip(f"{name} is not installed or has no device here")
    return make()


@pytest.fixture(params=[name for name, _, _ in _BACKENDS])
def xp(request: pytest.FixtureRequest) -> Backend:
    """Every available array backend; unavailable ones skip with the reason."""
    return _make(request.param)


@pytest.fixture(params=[name for name, _, _ in _BACKENDS if name not in _LAZY])
def xp_eager(request: pytest.FixtureRequest) -> Backend:
    """Every available in-memory (non-lazy) backend, for the matrix-free algorithms."""
    return _make(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260201)
