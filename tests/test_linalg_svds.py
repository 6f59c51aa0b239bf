"""svds (GKL bidiagonalisation) and the randomised SVD / Nyström against dense truth."""

from __future__ import annotations

import numpy as np
import pytest

from specinterp.linalg import LinearOperator, aslinearoperator, nystrom, randomized_svd, svds
from specinterp.testing import matrix_with_spectrum, symmetric_with_eigenvalues


def _cases(rng):
    return {
        "separated": (np.linspace(20, 1, 60), 90, 60),
        "clustered": (np.concatenate([5 + 1e-3 * np.arange(4), rng.uniform(0, 1, 56)]), 60, 80),
        "rank_deficient": (np.concatenate([rng.uniform(1, 3, 5), np.zeros(45)]), 50, 70),
    }


@pytest.mark.parametrize("kind", ["separated", "clustered", "rank_deficient"])
def test_svds_agrees_with_svdvals(rng, kind):
    s, m, n = _cases(rng)[kind]
    a = matrix_with_spectrum(s, m, n, rng)
    true = np.linalg.svd(a, compute_uv=False)
    res = svds(a, 4, tol=1e-10, return_vectors=True)
    assert res.converged
    np.testing.assert_allclose(res.values, true[:4], rtol=1e-10)
    for sig, r in zip(res.values, res.residuals, strict=True):  # T9 for singular values
        assert np.min(np.abs(true - sig)) <= r
    np.testing.assert_allclose(a @ res.right, res.left * res.values, atol=1e-9)
    np.testing.assert_allclose(a.T @ res.left, res.right * res.values, atol=1e-9)


def test_svds_matrix_free_large(rng):
    """A 20 000 × 5 000 operator A = U diag(s) Vᵀ with Householder factors, never formed."""
    m, n = 20_000, 5_000
    s = np.concatenate([[30.0, 20.0, 10.0], rng.uniform(0, 1, n - 3)])
    u_ref = rng.standard_normal(m)
    v_ref = rng.standard_normal(n)
    u_ref /= np.linalg.norm(u_ref)
    v_ref /= np.linalg.norm(v_ref)

    def h(x, w):
        return x - 2.0 * np.outer(w, w @ x)

    def mm(x):  # A x = Hu [diag(s) Hv x; 0]
        y = h(x, v_ref) * s[:, None]
        return h(np.vstack([y, np.zeros((m - n, x.shape[1]))]), u_ref)

    def rmm(y):
        z = h(y, u_ref)[:n] * s[:, None]
        return h(z, v_ref)

    op = LinearOperator((m, n), matmat=mm, rmatmat=rmm)
    res = svds(op, 3, tol=1e-10)
    np.testing.assert_allclose(res.values, [30.0, 20.0, 10.0], rtol=1e-10)


def test_svds_same_answer_on_every_backend(xp_eager, rng):
    xp = xp_eager
    a = matrix_with_spectrum(np.concatenate([[9.0, 7.0, 6.0], rng.uniform(0, 2, 37)]), 50, 40, rng)
    ref = svds(a, 3, tol=1e-12, seed=2)
    got = svds(aslinearoperator(xp.asarray(a)), 3, tol=1e-12 if xp.is_float64 else 1e-5, seed=2)
    np.testing.assert_allclose(
        xp.to_numpy(got.values), ref.values, rtol=1e-10 if xp.is_float64 else 1e-4
    )


def test_randomized_svd_is_exact_for_low_rank_and_bounds_hold(xp_eager, rng):
    xp = xp_eager
    s = np.concatenate([[8.0, 4.0, 2.0, 1.0], np.zeros(26)])
    a = matrix_with_spectrum(s, 40, 30, rng)
    res = randomized_svd(aslinearoperator(xp.asarray(a)), 4, seed=0)
    tol = 1e-10 if xp.is_float64 else 1e-4
    np.testing.assert_allclose(xp.to_numpy(res.values), s[:4], rtol=tol)
    assert res.num_matvecs == 14 + 2 * 2 * 14 + 14 + 4


def test_randomized_svd_power_iterations_sharpen(rng):
    s = 1.0 / np.arange(1, 101) ** 0.5  # slow decay: power iterations matter
    a = matrix_with_spectrum(s, 150, 100, rng)
    errs = []
    for q in (0, 1, 3):
        res = randomized_svd(a, 5, oversample=5, power_iters=q, seed=0)
        errs.append(np.max(np.abs(res.values - s[:5]) / s[:5]))
        true_res = np.linalg.norm(a @ res.right - res.left * res.values, axis=0)
        np.testing.assert_allclose(res.residuals, true_res, rtol=1e-6, atol=1e-12)
        for sig, r in zip(res.values, res.residuals, strict=True):
            assert np.min(np.abs(s - sig)) <= r
    assert errs[0] > errs[1] > errs[2]


def test_nystrom_psd(rng):
    # exactly low rank: recovered to rounding
    lam = np.concatenate([[10.0, 6.0, 3.0], np.zeros(97)])
    a = symmetric_with_eigenvalues(lam, rng)
    res = nystrom(a, 3, oversample=10, seed=0)
    np.testing.assert_allclose(res.values, lam[:3], rtol=1e-10)
    # with a tail: Â ⪯ A, so values are underestimated, and by at most the expected error
    # (1 + k/(ℓ − k − 1)) · Σ_{j>k} λ_j of Tropp et al. (2017, Thm 4.1)
    lam = np.concatenate([[10.0, 6.0, 3.0], 1e-3 * rng.uniform(0, 1, 97)])
    a = symmetric_with_eigenvalues(lam, rng)
    res = nystrom(a, 3, oversample=10, seed=0)
    bound = (1 + 3 / (13 - 3 - 1)) * lam[3:].sum()
    assert np.all(res.values <= lam[:3] + 1e-12)
    assert np.all(lam[:3] - res.values <= bound)
    for theta, r in zip(res.values, res.residuals, strict=True):  # T9
        assert np.min(np.abs(lam - theta)) <= r
    with pytest.raises(ValueError, match="symmetric"):
        nystrom(rng.standard_normal((5, 4)), 2)


def test_svds_bad_arguments(rng):
    a = rng.standard_normal((5, 4))
    with pytest.raises(ValueError, match="1 ≤ k"):
        svds(a, 5)
    with pytest.raises(NotImplementedError, match="rmatvec"):
        svds(LinearOperator((5, 4), matvec=lambda v: a @ v), 2)
