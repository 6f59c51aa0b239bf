"""Theory §1: every statistic against an independent float64 computation, on every backend."""

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
from specinterp.testing import matrix_with_spectrum, symmetric_with_eigenvalues
from specinterp.testing.strategies import spectral_matrices, symmetric_matrices

from .reference import entropy_of, stats, svals

FUNCTIONS = {
    "entropy": lambda a: si.spectral_entropy(a),
    "entropy_rv": lambda a: si.spectral_entropy(a, convention="roy-vetterli"),
    "normalized_entropy": lambda a: si.spectral_entropy(a, normalized=True),
    "effective_rank": si.effective_rank,
    "stable_rank": si.stable_rank,
    "condition_number": si.condition_number,
    "typical_gain": si.typical_gain,
    "attribution_condition_number": si.attribution_condition_number,
}


def _batch(rng: np.random.Generator) -> np.ndarray:
    """Three 7×5 matrices with known, distinct and well-conditioned spectra."""
    spectra = [
        np.array([5.0, 3.0, 2.0, 1.0, 0.5]),
        np.linspace(2, 1, 5),
        np.array([9, 1, 1, 1, 1.0]),
    ]
    return np.stack([matrix_with_spectrum(s, 7, 5, rng) for s in spectra])


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("transpose", [False, True], ids=["tall", "wide"])
def test_statistic_matches_reference(xp, rng, name, transpose):
    a = _batch(rng)
    if transpose:
        a = np.swapaxes(a, -1, -2).copy()
    out = FUNCTIONS[name](xp.asarray(a))
    assert _xp.namespace(out) is _xp.namespace(xp.asarray(a)) or _xp.backend_name(
        _xp.namespace(out)
    ) == _xp.backend_name(xp.xp)
    assert out.dtype == xp.dtype
    assert tuple(out.shape) == (3,)
    expected = [stats(m)[name] for m in a]
    np.testing.assert_allclose(xp.to_numpy(out), expected, rtol=xp.rtol * 100)


def test_singular_values_and_norms(xp, rng):
    a = _batch(rng)
    s = si.singular_values(xp.asarray(a))
    np.testing.assert_allclose(xp.to_numpy(s), [svals(m) for m in a], rtol=xp.rtol * 10)
    spec = si.Spectrum.from_matrix(xp.asarray(a))
    np.testing.assert_allclose(
        xp.to_numpy(spec.frobenius_norm()), np.linalg.norm(a, axis=(1, 2)), rtol=xp.rtol
    )
    np.testing.assert_allclose(
        xp.to_numpy(spec.operator_norm()), np.linalg.norm(a, 2, axis=(1, 2)), rtol=xp.rtol * 10
    )
    np.testing.assert_array_equal(xp.to_numpy(spec.rank()), [5, 5, 5])


@pytest.mark.parametrize("shape", [(10, 784), (784, 10), (6, 12), (12, 6), (7, 9)])
def test_singular_values_of_rectangular_batches(xp, rng, shape):
    """Known singular values spanning 1e-6 … 1 (κ = 1e6), for every aspect ratio.

    From aspect 2 on, NumPy and PyTorch read them off the R factor of a QR; backward-stable
    either way, each singular value is exact up to a few ``eps · ‖A‖`` (absolute).
    """
    k = min(shape)
    spectra = [np.geomspace(1.0, 1e-6, k) * c for c in (1.0, 3.0)]
    a = np.stack([matrix_with_spectrum(s, *shape, rng) for s in spectra])
    got = xp.to_numpy(si.singular_values(xp.asarray(a)))
    eps = float(np.finfo(np.float32 if "32" in str(xp.dtype) else np.float64).eps)
    for g, s in zip(got, spectra, strict=True):
        np.testing.assert_allclose(g, np.sort(s)[::-1], rtol=0, atol=50 * eps * s.max())


def test_results_stay_on_input_device(xp, rng):
    a = xp.asarray(_batch(rng))
    for f in FUNCTIONS.values():
        assert _xp.device(f(a)) == _xp.device(a)


def test_leading_batch_axes(xp, rng):
    a = rng.standard_normal((2, 3, 4, 6))
    out = xp.to_numpy(si.spectral_entropy(xp.asarray(a)))
    assert out.shape == (2, 3)
    expected = [[entropy_of(svals(a[i, j]) ** 2) for j in range(3)] for i in range(2)]
    np.testing.assert_allclose(out, expected, rtol=xp.rtol * 100)


def test_truncated_and_singular_condition_number(xp, rng):
    s = np.array([8.0, 4.0, 2.0, 0.0])
    a = xp.asarray(matrix_with_spectrum(s, 6, 4, rng))
    assert math.isinf(float(xp.to_numpy(si.condition_number(a))))
    assert float(xp.to_numpy(si.condition_number(a, k=2))) == pytest.approx(2.0, rel=xp.rtol * 10)
    assert float(xp.to_numpy(si.condition_number(a, k=3))) == pytest.approx(4.0, rel=xp.rtol * 10)
    # an explicit rtol declares σ_r = 1e-3 σ_1 singular or not
    b = xp.asarray(matrix_with_spectrum(np.array([1.0, 1e-3]), 3, 2, rng))
    assert float(xp.to_numpy(si.condition_number(b))) == pytest.approx(1e3, rel=1e-3)
    assert math.isinf(float(xp.to_numpy(si.condition_number(b, rtol=1e-2))))
    with pytest.raises(ValueError, match="1 ≤ k ≤ r"):
        si.condition_number(b, k=3)


def test_roy_vetterli_and_energy_differ_as_defined(xp, rng):
    s = np.array([3.0, 1.0, 1.0])
    a = xp.asarray(matrix_with_spectrum(s, 3, 5, rng))
    h_e = float(xp.to_numpy(si.spectral_entropy(a)))
    h_rv = float(xp.to_numpy(si.spectral_entropy(a, convention="roy-vetterli")))
    assert h_e == pytest.approx(entropy_of(s**2), rel=xp.rtol * 10)
    assert h_rv == pytest.approx(entropy_of(s), rel=xp.rtol * 10)
    with pytest.raises(ValueError, match="convention"):
        si.spectral_entropy(a, convention="shannon")
    with pytest.raises(ValueError, match="hermitian=True"):
        si.spectral_entropy(a, convention="trace")


def test_gram_matrix_entropy_equals_factor_entropy(xp, rng):
    """H(K) = H(G) for K = G Gᵀ (theory §1 conventions, T5)."""
    g = rng.standard_normal((6, 9))
    k = g @ g.T
    h_g = si.spectral_entropy(xp.asarray(g))
    h_k = si.spectral_entropy(xp.asarray(k), hermitian=True)
    np.testing.assert_allclose(xp.to_numpy(h_k), xp.to_numpy(h_g), rtol=xp.rtol * 1e3)
    assert float(
        xp.to_numpy(si.Spectrum.from_matrix(xp.asarray(k), hermitian=True).negative_mass())
    ) == pytest.approx(0.0, abs=xp.rtol)


def test_indefinite_spectrum_and_negative_mass(xp, rng):
    lam = np.array([4.0, -2.0, 1.0, -1.0, 0.5])
    h = xp.asarray(symmetric_with_eigenvalues(lam, rng))
    spec = si.Spectrum.from_matrix(h, hermitian=True)
    np.testing.assert_allclose(xp.to_numpy(spec.eigenvalues), np.sort(lam), atol=xp.rtol * 100)
    np.testing.assert_allclose(
        xp.to_numpy(spec.values), np.sort(np.abs(lam))[::-1], atol=xp.rtol * 100
    )
    assert float(xp.to_numpy(spec.negative_mass())) == pytest.approx(3.0 / 8.5, rel=xp.rtol * 100)
    assert float(xp.to_numpy(spec.entropy())) == pytest.approx(
        entropy_of(np.abs(lam)), rel=xp.rtol * 100
    )
    same = si.Spectrum.from_eigenvalues(xp.asarray(lam))
    np.testing.assert_allclose(
        xp.to_numpy(same.entropy()), xp.to_numpy(spec.entropy()), rtol=xp.rtol * 100
    )
    with pytest.raises(ValueError, match="eigenvalues"):
        si.Spectrum.from_matrix(xp.asarray(rng.standard_normal((3, 4)))).negative_mass()


def test_from_singular_values_with_shape(xp):
    spec = si.Spectrum.from_singular_values(xp.asarray(np.array([1.0, 3.0, 2.0])), shape=(3, 10))
    np.testing.assert_allclose(xp.to_numpy(spec.values), [3.0, 2.0, 1.0])
    assert float(xp.to_numpy(spec.typical_gain())) == pytest.approx(math.sqrt(14 / 10), rel=xp.rtol)
    with pytest.raises(ValueError, match="non-negative"):
        si.Spectrum.from_singular_values(xp.asarray(np.array([1.0, -1.0])))
    with pytest.raises(ShapeError, match="do not fit"):
        si.Spectrum.from_singular_values(xp.asarray(np.array([1.0, 2.0])), shape=(3, 5))


# --------------------------------------------------------------------------- §1 ranges
def _close_le(a, b, tol):
    return a <= b + tol * max(1.0, abs(b))


@given(case=spectral_matrices())
def test_ranges_of_section1(xp, case):
    a = xp.asarray(case.matrix)
    s_true = case.values
    if s_true[0] == 0:
        return
    m, n = case.matrix.shape
    r = min(m, n)
    spec = si.Spectrum.from_matrix(a)
    tol = 1e-9 if xp.is_float64 else 1e-3
    rank = int(np.sum(s_true > 1e-6 * s_true[0]))  # spectra are drawn ≥ 1e-3 or exactly 0
    p = xp.to_numpy(spec.distribution())
    assert np.all(p >= 0) and abs(p.sum() - 1) < tol
    h = float(xp.to_numpy(spec.entropy()))
    assert _close_le(0.0, h, tol) and _close_le(h, math.log(rank), tol)
    if r >= 2:
        hn = float(xp.to_numpy(spec.entropy(normalized=True)))
        assert _close_le(0.0, hn, tol) and _close_le(hn, 1.0, tol)
    er = float(xp.to_numpy(spec.effective_rank()))
    sr = float(xp.to_numpy(spec.stable_rank()))
    for v in (er, sr):
        assert _close_le(1.0, v, tol) and _close_le(v, rank, tol)
    assert float(xp.to_numpy(spec.condition_number())) >= 1.0
    tau = float(xp.to_numpy(spec.typical_gain()))
    assert 0.0 <= tau and _close_le(tau, float(xp.to_numpy(spec.operator_norm())), tol)
    ka = float(xp.to_numpy(spec.attribution_condition_number()))
    assert _close_le(1.0, ka, tol) and _close_le(ka, math.sqrt(r), tol)


@given(case=symmetric_matrices())
def test_ranges_symmetric(xp, case):
    if np.all(case.values == 0):
        return
    spec = si.Spectrum.from_matrix(xp.asarray(case.matrix), hermitian=True)
    tol = 1e-9 if xp.is_float64 else 1e-3
    rank = int(np.sum(np.abs(case.values) > 1e-6 * np.max(np.abs(case.values))))
    h = float(xp.to_numpy(spec.entropy()))
    assert _close_le(0.0, h, tol) and _close_le(h, math.log(rank), tol)
    nm = float(xp.to_numpy(spec.negative_mass()))
    true_nm = np.abs(case.values[case.values < 0]).sum() / np.abs(case.values).sum()
    assert nm == pytest.approx(true_nm, abs=tol * 10)


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
    h = xp.to_numpy(si.spectral_entropy(xp.asarray(a), on_zero="nan"))
    assert np.isnan(h[0]) and h[1] == pytest.approx(math.log(3), rel=xp.rtol * 10)
    assert math.isinf(float(xp.to_numpy(si.condition_number(xp.asarray(a[0])))))
    with pytest.raises(ValueError, match="on_zero"):
        si.spectral_entropy(xp.asarray(a), on_zero="zero")


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
