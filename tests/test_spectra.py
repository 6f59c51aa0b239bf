"""Theory §1: every statistic against an independent float64 computation, on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given

import specinterp as si
from specinterp import _xp
from specinterp.errors import (
    ShapeError,
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
