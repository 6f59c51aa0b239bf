"""Theory §1 at the edges: bad input, gradients, extreme magnitudes, on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import specinterp as si
from specinterp import _xp
from specinterp.errors import (
    DTypeError,
    EmptyInputError,
    NonFiniteError,
    ShapeError,
    ZeroSpectrumError,
)
from specinterp.testing import matrix_with_spectrum

from .reference import stats
from .test_spectra import FUNCTIONS, _batch


# --------------------------------------------------------------------------- bad input
def test_rejects_non_finite(xp):
    a = np.ones((3, 3))
    a[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        si.spectral_entropy(xp.asarray(a))
    a[1, 2] = np.inf
    with pytest.raises(NonFiniteError):
        si.stable_rank(xp.asarray(a))


def test_rejects_integer_dtype(xp):
    a = xp.xp.asarray(np.ones((3, 3), dtype=np.int64))
    with pytest.raises(DTypeError, match="real floating"):
        si.spectral_entropy(a)


@pytest.mark.parametrize("shape", [(), (4,)])
def test_rejects_too_few_axes(xp, shape):
    with pytest.raises(ShapeError, match=r"\(\.\.\., m, n\)"):
        si.effective_rank(xp.asarray(np.ones(shape)))


@pytest.mark.parametrize("shape", [(0, 3, 3), (3, 0), (2, 4, 0)])
def test_rejects_empty(xp, shape):
    with pytest.raises(EmptyInputError, match="zero-length"):
        si.singular_values(xp.asarray(np.ones(shape)))


def test_zero_matrix(xp):
    a = np.zeros((2, 3, 3))
    a[1] = np.eye(3)
    with pytest.raises(ZeroSpectrumError, match="on_zero='nan'"):
        si.spectral_entropy(xp.asarray(a))
    with pytest.raises(ZeroSpectrumError):
        si.effective_rank(xp.asarray(a))
    with pytest.raises(ZeroSpectrumError):
        si.attribution_condition_number(xp.asarray(a))
    with pytest.raises(ZeroSpectrumError, match="stable rank"):
        si.stable_rank(xp.asarray(a))
    srank = xp.to_numpy(si.stable_rank(xp.asarray(a), on_zero="nan"))
    assert np.isnan(srank[0]) and srank[1] == pytest.approx(3.0, rel=xp.rtol * 10)
    h = xp.to_numpy(si.spectral_entropy(xp.asarray(a), on_zero="nan"))
    assert np.isnan(h[0]) and h[1] == pytest.approx(math.log(3), rel=xp.rtol * 10)
    assert math.isinf(float(xp.to_numpy(si.condition_number(xp.asarray(a[0])))))
    with pytest.raises(ValueError, match="on_zero"):
        si.spectral_entropy(xp.asarray(a), on_zero="zero")


def test_one_singular_value_has_entropy_plus_zero(xp):
    """A matrix with one nonzero singular value (a one-output Jacobian, ``1 × d``) has entropy
    exactly ``+0`` (it printed as ``-0.0``) and effective rank 1."""
    a = xp.asarray(np.ones((3, 1, 5)))
    h = np.asarray(xp.to_numpy(si.spectral_entropy(a)))
    assert np.all(h == 0) and not np.any(np.signbit(h))
    assert np.all(np.asarray(xp.to_numpy(si.effective_rank(a))) == 1)


def test_normalized_entropy_needs_two_values(xp):
    with pytest.raises(ShapeError, match="r = min"):
        si.spectral_entropy(xp.asarray(np.ones((1, 5))), normalized=True)


def test_rejects_non_arrays_and_mixed_namespaces():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="expected an array"):
        si.spectral_entropy([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(si.errors.NamespaceMismatchError, match="numpy, torch"):
        _xp.namespace(np.ones((2, 2)), torch.ones(2, 2))


# --------------------------------------------------------------------------- gradients
def test_torch_gradient_matches_finite_differences(rng):
    torch = pytest.importorskip("torch")
    a = torch.tensor(matrix_with_spectrum(np.array([3.0, 2.0, 1.0]), 4, 3, rng), requires_grad=True)
    for f in (
        lambda x: si.spectral_entropy(x),
        lambda x: si.spectral_entropy(x, convention="roy-vetterli"),
        si.stable_rank,
        si.attribution_condition_number,
        si.typical_gain,
    ):
        assert torch.autograd.gradcheck(f, (a,), eps=1e-6, atol=1e-7)


def test_torch_gradient_finite_with_zero_singular_value(rng):
    torch = pytest.importorskip("torch")
    a = torch.tensor(matrix_with_spectrum(np.array([3.0, 1.0, 0.0]), 3, 3, rng), requires_grad=True)
    si.spectral_entropy(a).backward()
    assert torch.all(torch.isfinite(a.grad))


def test_jax_gradient_matches_finite_differences(rng):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    a0 = matrix_with_spectrum(np.array([3.0, 2.0, 1.0]), 3, 5, rng)
    f = lambda x: si.spectral_entropy(x)  # noqa: E731
    g = np.asarray(jax.grad(f)(jnp.asarray(a0)))
    fd = np.zeros_like(a0)
    h = 1e-6
    for idx in np.ndindex(a0.shape):
        e = np.zeros_like(a0)
        e[idx] = h
        fd[idx] = (float(f(jnp.asarray(a0 + e))) - float(f(jnp.asarray(a0 - e)))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_float32_agrees_with_float64(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((16, 10, 30))
    h64 = si.spectral_entropy(torch.tensor(a)).numpy()
    h32 = si.spectral_entropy(torch.tensor(a, dtype=torch.float32)).numpy()
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, h64, rtol=1e-5)


@given(st.integers(2, 6))
def test_equal_singular_values_give_full_entropy(r):
    a = np.eye(r)[:, :r] * 2.5
    assert float(si.spectral_entropy(a, normalized=True)) == pytest.approx(1.0, rel=1e-12)
    assert float(si.effective_rank(a)) == pytest.approx(r, rel=1e-12)


# ------------------------------------------------------------------ extreme magnitudes
SCALE_INVARIANT = (
    "entropy",
    "entropy_rv",
    "normalized_entropy",
    "effective_rank",
    "stable_rank",
    "condition_number",
    "attribution_condition_number",
)


def _extreme_scales(xp) -> list[float]:
    """Powers of ten from just above underflow to just below overflow of the backend's dtype."""
    return [1e-300, 1e-170, 1e170, 1e300] if xp.is_float64 else [1e-36, 1e-20, 1e20, 1e36]


@pytest.mark.parametrize("name", SCALE_INVARIANT)
def test_scale_invariant_statistics_at_extreme_magnitudes(xp, rng, name):
    """σ² of entries near 1e±170 does not exist in float64; the statistics must not notice."""
    a = _batch(rng)
    expected = np.array([stats(m)[name] for m in a])
    rtol = 1e-10 if xp.is_float64 else 2e-4
    for c in _extreme_scales(xp):
        out = xp.to_numpy(FUNCTIONS[name](xp.asarray(a * c)))
        np.testing.assert_allclose(out, expected, rtol=rtol, err_msg=f"scale {c:g}")


def test_typical_gain_and_norms_are_homogeneous(xp, rng):
    a = _batch(rng)
    expected = np.array([stats(m)["typical_gain"] for m in a])
    for c in _extreme_scales(xp):
        spec = si.Spectrum.from_matrix(xp.asarray(a * c))
        rtol = 1e-10 if xp.is_float64 else 2e-4
        np.testing.assert_allclose(
            xp.to_numpy(spec.typical_gain()) / c, expected, rtol=rtol, err_msg=f"{c:g}"
        )
        np.testing.assert_allclose(
            xp.to_numpy(spec.frobenius_norm()) / c,
            np.linalg.norm(a, axis=(-2, -1)),
            rtol=rtol,
        )


def test_tiny_nonzero_matrix_is_not_a_zero_matrix(xp):
    # σ² underflows, σ does not
    a = np.array([[1.0, 2.0], [3.0, 4.0]]) * (1e-170 if xp.is_float64 else 1e-37)
    h = xp.to_numpy(si.spectral_entropy(xp.asarray(a)))
    k = xp.to_numpy(si.attribution_condition_number(xp.asarray(a)))
    ref = stats(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(h, ref["entropy"], rtol=1e-6)
    np.testing.assert_allclose(k, ref["attribution_condition_number"], rtol=1e-6)
    assert 1.0 <= float(k) <= math.sqrt(2) * (1 + 1e-7)


def test_norm_overflow_is_inf_and_ratios_stay_exact():
    a = np.full((40, 40), 1e308)  # every entry finite, σ_1 = 4e309 is not
    a[0, 0] = -1e308  # rank 2
    assert np.isinf(si.singular_values(a)[0])  # the correctly rounded operator norm
    expected = stats(a / 1e300)
    for name in ("entropy", "stable_rank", "attribution_condition_number", "effective_rank"):
        np.testing.assert_allclose(FUNCTIONS[name](a), expected[name], rtol=1e-12)


def test_bounds_do_not_overflow_in_scale_invariant_links():
    a = np.diag([3.0, 2.0, 1.0]) * 1e200
    assert si.bounds.entropy_attribution_bound(a).holds()
    assert si.bounds.stable_vs_effective_rank(a).holds()
    with pytest.raises(NonFiniteError, match="homogeneous"):
        si.bounds.typical_sensitivity(a)
    t1 = si.bounds.typical_sensitivity(a / 1e200)
    tail = si.bounds.gaussian_sensitivity_tail(np.diag([3.0, 2.0, 1.0]) * 1e100, 1.0, 2.0)
    assert np.isfinite(tail.upper) and t1.holds()
    # T2's ‖a‖_2 = (ε²/n)(Σσ⁴)^½ without forming σ⁴ (which overflows at σ = 3e100)
    l2 = 1e200 / 3 * math.sqrt(81 + 16 + 1)
    np.testing.assert_allclose(tail.mean - tail.lower, 2 * l2 * math.sqrt(2.0), rtol=1e-12)
