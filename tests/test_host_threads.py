"""Krylov solvers run their small host problems on one NumPy BLAS thread when the operator
belongs to another library (whose threads would otherwise contend with NumPy's)."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from specinterp.linalg import LinearOperator, eigsh, svds
from specinterp.testing import symmetric_with_eigenvalues


def _numpy_blas_threads() -> list[int]:
    return [
        lib["num_threads"]
        for lib in threadpool_info()
        if lib["user_api"] == "blas" and "numpy" in lib["filepath"]
    ]


def _recording(a, xp, seen):
    mat = xp.asarray(a)

    def mv(v):
        seen.append(_numpy_blas_threads())
        return mat @ v

    return LinearOperator(tuple(mat.shape), mv, dtype=mat.dtype, xp=xp, symmetric=True)


@pytest.mark.parametrize("solver", ["eigsh", "svds"])
def test_one_numpy_blas_thread_while_torch_runs_the_products(rng, solver):
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xt

    a = symmetric_with_eigenvalues(np.linspace(1.0, 5.0, 60), rng)
    if not _numpy_blas_threads():
        pytest.skip("NumPy's BLAS is not visible to threadpoolctl here")
    with threadpool_limits(2, user_api="blas"):
        before = _numpy_blas_threads()
        seen: list[list[int]] = []
        op = _recording(torch.from_numpy(a), xt, seen)
        res = eigsh(op, 3, seed=0) if solver == "eigsh" else svds(op, 3, seed=0)
        assert seen and all(t == [1] * len(before) for t in seen)
        assert _numpy_blas_threads() == before  # restored
        np.testing.assert_allclose(np.asarray(res.values)[:3], [5.0, 5.0 - 4 / 59, 5.0 - 8 / 59])
        # a NumPy operator's products run on that same BLAS: its threads are left alone
        seen.clear()
        import array_api_compat.numpy as xn

        eigsh(_recording(a, xn, seen), 3, seed=0)
        assert all(t == before for t in seen)
