"""Namespace helpers and the seeded RNG adapter."""

from __future__ import annotations

import numpy as np
import pytest

from specinterp import _xp
from specinterp.errors import NamespaceMismatchError


def test_same_seed_same_numbers_on_every_backend(xp):
    ref = _xp.Generator(7, np).normal((4, 3))
    got = _xp.as_generator(7, xp.xp).normal((4, 3), dtype=xp.dtype)
    assert got.dtype == xp.dtype
    np.testing.assert_allclose(xp.to_numpy(got), ref, rtol=xp.rtol)
    assert _xp.namespace(got) is not None


def test_draws_have_the_requested_law():
    g = _xp.Generator(0, np)
    z = g.normal((200_000,))
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    r = g.rademacher((1000,))
    assert set(np.unique(r)) == {-1.0, 1.0}
    s = g.sphere((50, 6), radius=2.5)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 2.5)
    u = g.uniform((1000,), low=2.0, high=3.0)
    assert u.min() >= 2.0 and u.max() < 3.0


def test_spawned_generators_are_independent_and_reproducible():
    a = _xp.Generator(3, np).spawn().normal((5,))
    b = _xp.Generator(3, np).spawn().normal((5,))
    c = _xp.Generator(3, np).normal((5,))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_as_generator_rejects_bad_seed():
    with pytest.raises(TypeError, match="seed must be"):
        _xp.as_generator("42", np)
    for seed in (-1, np.int64(-3)):  # NumPy's own message named no argument
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            _xp.as_generator(seed, np)
    # the routines that draw on the host alone take seeds by the same rule
    import specinterp as si

    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        si.rmt.power_law_fit(np.arange(1.0, 200.0), seed=-1)


def test_backend_names_and_to_numpy(xp):
    a = xp.asarray(np.arange(6.0).reshape(2, 3))
    assert _xp.backend_name(_xp.namespace(a)) in xp.name
    np.testing.assert_array_equal(_xp.to_numpy(a), np.arange(6.0).reshape(2, 3))


def test_mixed_namespaces_raise():
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(NamespaceMismatchError, match="different libraries"):
        _xp.namespace(np.ones(2), jnp.ones(2))


def test_device_mismatch_raises():
    a, b = np.ones(2), np.ones(2)
    _xp.check_same_device(a, b)  # same device: no error
    torch = pytest.importorskip("torch")
    meta = torch.ones(2, device="meta")
    with pytest.raises(NamespaceMismatchError, match="different devices"):
        _xp.check_same_device(torch.ones(2), meta)


def test_all_finite_is_not_fooled_by_overflowing_sums(xp):
    big = np.full((4, 4), np.finfo(np.float32).max if not xp.is_float64 else 1e308)
    assert _xp.all_finite(xp.asarray(big)) is True
    big[2, 3] = np.nan
    assert _xp.all_finite(xp.asarray(big)) is False
    assert _xp.all_finite(xp.asarray(np.array([1.0, -np.inf]))) is False


def test_minus_product_is_w_minus_v_c(xp):
    """The fused ``w − V c`` (``addmv`` in torch) against NumPy in float64, on a basis stored
    as the transposed view the Krylov solvers use."""
    rng = np.random.default_rng(3)
    rows, w, c = rng.standard_normal((4, 50)), rng.standard_normal(50), rng.standard_normal(4)
    basis = xp.asarray(rows).T  # (50, 4), a view of row-major storage
    got = _xp.minus_product(xp.asarray(w), basis, xp.asarray(c))
    np.testing.assert_allclose(xp.to_numpy(got), w - rows.T @ c, rtol=xp.rtol, atol=xp.rtol)
