"""``eigsh`` at the resolution of its arithmetic: the rounding floor of the stopping test, and
``stop_below`` for the bottom of a positive semi-definite spectrum."""

from __future__ import annotations

import numpy as np
import pytest

import specinterp as si
from specinterp.linalg import LinearOperator


def _psd(n: int, bottom: np.ndarray, dtype, seed: int = 0):
    """``Q diag(λ) Qᵀ`` in ``dtype`` with a few large eigenvalues, a bulk, and ``bottom``."""
    rng = np.random.default_rng(seed)
    lam = np.concatenate(
        [[1.0, 0.8, 0.5], rng.uniform(1e-3, 0.3, n - 3 - bottom.size), np.asarray(bottom)]
    )
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = ((q * lam) @ q.T).astype(dtype)
    op = LinearOperator(a.shape, lambda v: a @ v, symmetric=True, dtype=dtype)
    return op, np.linalg.eigvalsh(a.astype(np.float64))  # the matrix as stored, in float64


def test_float32_bottom_cluster_converges_at_the_rounding_floor_with_a_rigorous_bound():
    # 40 eigenvalues in [0, 1e-6]: at what float32 products resolve (eps ‖A‖ ≈ 1.2e-7 per
    # product). Without the floor the stopping test asked for a residual of
    # tol · eps^{2/3} ‖T‖ ≈ 8e-9 and ran its 300 restarts (3 020 products) unconverged.
    bottom = np.random.default_rng(1).uniform(0.0, 1e-6, 40)
    op, lam = _psd(1500, bottom, np.float32)
    res = si.linalg.eigsh(op, 1, which="SA", seed=0)
    eps = np.finfo(np.float32).eps
    assert res.converged
    value, bound = float(res.values[0]), float(res.residuals[0])
    # T9: an eigenvalue within the reported residual, and that residual at the floor's scale
    assert np.min(np.abs(lam - value)) <= bound
    assert bound <= 4 * 20 * eps * lam[-1]


def test_the_floor_does_not_bind_where_the_relative_test_is_attainable():
    # well-separated top eigenvalues in float64 at tol 1e-10: the relative rule decides, and the
    # values are accurate to it, as before
    op, lam = _psd(400, np.array([1e-4]), np.float64)
    res = si.linalg.eigsh(op, 3, which="LA", tol=1e-10, seed=0)
    assert res.converged
    np.testing.assert_allclose(res.values, lam[::-1][:3], rtol=1e-12)
    assert np.all(res.residuals <= 1e-10 * np.abs(res.values) + 20 * 2.3e-16)


def test_stop_below_ends_the_run_once_a_ritz_value_shows_the_bottom_is_below_the_level():
    bottom = np.array([1e-9, 2e-9, 5e-9, 1e-8])
    op, lam = _psd(1200, bottom, np.float64)
    level = 1e-4
    full = si.linalg.eigsh(op, 1, which="SA", seed=0, ncv=40)
    stopped = si.linalg.eigsh(op, 1, which="SA", seed=0, ncv=40, stop_below=level)
    value = float(stopped.values[0])
    # a Ritz value is an upper bound on λ_min (interlacing): λ_min ≤ value ≤ level
    assert lam[0] <= value + 1e-15 <= level + 1e-15
    assert not stopped.converged and not stopped.verified
    assert np.min(np.abs(lam - value)) <= float(stopped.residuals[0])  # T9 still holds
    assert stopped.num_matvecs < full.num_matvecs
    assert full.converged and float(full.values[0]) == pytest.approx(lam[0], abs=1e-12)


def test_stop_below_is_in_the_operators_units_whatever_its_scale():
    # the solver scales huge operators internally; the level is compared in A's own units
    bottom = np.array([1e-3])
    op, lam = _psd(300, bottom, np.float64)
    big = LinearOperator(op.shape, lambda v: 1e200 * op.matvec(v), symmetric=True)
    stopped = si.linalg.eigsh(big, 1, which="SA", seed=0, stop_below=1e198)
    assert float(stopped.values[0]) <= 1e198
    assert float(stopped.values[0]) >= 1e200 * lam[0] * (1 - 1e-12)
    # a level under λ_min is never reached: the run converges as without it
    plain = si.linalg.eigsh(big, 1, which="SA", seed=0)
    low = si.linalg.eigsh(big, 1, which="SA", seed=0, stop_below=1e196)
    assert low.converged and low.num_matvecs == plain.num_matvecs
    assert float(low.values[0]) == pytest.approx(1e200 * lam[0], rel=1e-10)


def test_stop_below_needs_the_smallest_end():
    op, _ = _psd(50, np.array([0.0]), np.float64)
    with pytest.raises(ValueError, match="which='SA'"):
        si.linalg.eigsh(op, 1, which="LA", stop_below=0.1)
