"""eigsh (thick-restart band Lanczos) against dense eigvalsh and the T9 residual bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from specinterp.linalg import aslinearoperator, eigsh
from specinterp.testing import operator_with_spectrum, symmetric_with_eigenvalues
from specinterp.testing.strategies import symmetric_matrices


def _spectra(rng, n):
    return {
        "separated": np.linspace(1.0, 10.0, n) ** 2,
        "clustered": np.concatenate([10 + 1e-3 * np.arange(5), rng.uniform(0, 1, n - 5)]),
        "degenerate": np.concatenate([[12.0], np.full(3, 7.0), rng.uniform(-1, 1, n - 4)]),
        "negative": rng.uniform(-5.0, 5.0, n),
        "rank_deficient": np.concatenate([rng.uniform(1, 4, 6), np.zeros(n - 6)]),
    }


def _check(result, lam, which, k, tol):
    values = np.asarray(result.values)
    res = np.asarray(result.residuals)
    assert result.converged
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(res))
    if which == "LA":
        expected = np.sort(lam)[::-1][:k]
    elif which == "SA":
        expected = np.sort(lam)[:k]
    elif which == "LM":
        expected = lam[np.argsort(-np.abs(lam), kind="stable")][:k]
        values, expected = np.sort(values), np.sort(expected)
    else:
        srt = np.sort(lam)
        expected = np.sort(np.concatenate([srt[len(srt) - (k + 1) // 2 :], srt[: k // 2]]))
    scale = np.max(np.abs(lam))
    np.testing.assert_allclose(values, expected, rtol=tol, atol=tol * scale)
    # T9: every Ritz interval [θ − r, θ + r] contains an eigenvalue (the dense reference is
    # itself only accurate to about n·eps·‖A‖, which is added as slack)
    slack = lam.size * np.finfo(float).eps * scale
    for theta, r in zip(np.asarray(result.values), res, strict=True):
        assert np.min(np.abs(lam - theta)) <= r + slack


@pytest.mark.parametrize(
    "kind", ["separated", "clustered", "degenerate", "negative", "rank_deficient"]
)
@pytest.mark.parametrize("which", ["LA", "SA", "LM", "BE"])
def test_dense_spectra_agree_with_eigvalsh(rng, kind, which):
    n, k, tol = 120, 4, 1e-8
    lam = _spectra(rng, n)[kind]
    a = symmetric_with_eigenvalues(lam, rng)
    lam = np.linalg.eigvalsh(a)  # the dense reference
    block = 3 if kind == "degenerate" else 1
    res = eigsh(a, k, which=which, tol=tol, block_size=block, seed=1, max_iter=2000)
    _check(res, lam, which, k, tol)


@pytest.mark.parametrize("n", [10, 20_000])
def test_sizes_from_10_to_20000(rng, n):
    lam = np.concatenate([[50.0, 40.0, 30.0], rng.uniform(-10, 10, n - 3)])
    op = operator_with_spectrum(lam, rng) if n > 1000 else symmetric_with_eigenvalues(lam, rng)
    res = eigsh(op, 3, which="LA", tol=1e-10, seed=0)
    _check(res, lam, "LA", 3, 1e-10)
    assert res.num_matvecs <= n


def test_invariant_subspace_breakdown_gives_no_nan(rng):
    lam = np.repeat([1.0, 2.0, 5.0], 40)  # three distinct eigenvalues, ncv = 20 steps
    a = symmetric_with_eigenvalues(lam, rng)
    res = eigsh(a, 3, which="LA", block_size=3, seed=0, return_vectors=True)
    assert np.all(np.isfinite(res.values)) and np.all(np.isfinite(res.vectors))
    np.testing.assert_allclose(res.values, [5.0, 5.0, 5.0], rtol=1e-10)
    for mode in ("full", "partial"):  # partial: the breakdown inside the first cycle
        single = eigsh(a, 2, which="BE", seed=0, reorthogonalize=mode)
        np.testing.assert_allclose(single.values, [1.0, 5.0], rtol=1e-10)
        triple = eigsh(a, 3, which="LA", seed=0, reorthogonalize=mode)  # found by the check
        np.testing.assert_allclose(triple.values, [5.0, 5.0, 5.0], rtol=1e-10)


def test_ritz_vectors_are_eigenvectors(rng):
    lam = np.linspace(-3, 9, 80)
    a = symmetric_with_eigenvalues(lam, rng)
    res = eigsh(a, 5, which="LM", tol=1e-10, return_vectors=True)
    x = res.vectors
    np.testing.assert_allclose(x.T @ x, np.eye(5), atol=1e-10)
    true_res = np.linalg.norm(a @ x - x * res.values, axis=0)
    assert np.all(true_res <= res.residuals)


def test_full_space_when_k_equals_n(rng):
    lam = rng.standard_normal(7)
    res = eigsh(symmetric_with_eigenvalues(lam, rng), 7, which="SA")
    np.testing.assert_allclose(res.values, np.sort(lam), atol=1e-12)


@pytest.mark.parametrize("reorthogonalize", ["full", "partial"])
@given(
    case=symmetric_matrices(max_side=40),
    k=st.integers(1, 4),
    which=st.sampled_from(["LA", "SA", "LM", "BE"]),
)
def test_t9_residual_bound_property(case, k, which, reorthogonalize):
    a = case.matrix
    n = a.shape[0]
    if np.all(case.values == 0):
        return
    k = min(k, n)
    res = eigsh(a, k, which=which, tol=1e-6, seed=3, max_iter=50, reorthogonalize=reorthogonalize)
    lam = np.linalg.eigvalsh(a)
    slack = n * np.finfo(float).eps * np.max(np.abs(lam))  # accuracy of the dense reference
    for theta, r in zip(np.asarray(res.values), np.asarray(res.residuals), strict=True):
        assert np.min(np.abs(lam - theta)) <= r + slack
        assert lam[0] - r - slack <= theta <= lam[-1] + r + slack  # in [λ_min, λ_max]


@pytest.mark.parametrize("reorthogonalize", ["full", "partial"])
def test_same_answer_on_every_backend(xp_eager, rng, reorthogonalize):
    xp = xp_eager
    lam = np.concatenate([[9.0, 8.0, 7.5], rng.uniform(-2, 2, 197)])
    a = symmetric_with_eigenvalues(lam, rng)
    ref = eigsh(a, 3, tol=1e-12, seed=5)
    got = eigsh(
        aslinearoperator(xp.asarray(a), symmetric=True),
        3,
        tol=1e-12 if xp.is_float64 else 1e-5,
        seed=5,
        reorthogonalize=reorthogonalize,
    )
    tol = 1e-10 if xp.is_float64 else 1e-4
    np.testing.assert_allclose(xp.to_numpy(got.values), ref.values, rtol=tol)


def test_bad_arguments(rng):
    a = symmetric_with_eigenvalues(np.arange(1.0, 11.0), rng)
    with pytest.raises(ValueError, match="symmetric"):
        eigsh(rng.standard_normal((5, 5)) + np.diag(np.arange(5.0)) * 1e3, 2)
    with pytest.raises(ValueError, match="1 ≤ k ≤ n"):
        eigsh(a, 0)
    with pytest.raises(ValueError, match="which"):
        eigsh(a, 2, which="XX")
    with pytest.raises(ValueError, match="block_size=1"):
        eigsh(a, 2, block_size=2, v0=np.ones(10))
