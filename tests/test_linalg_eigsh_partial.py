"""eigsh with partial reorthogonalisation: exact Rayleigh–Ritz on a semi-orthogonal basis.

The answers are checked against dense ``eigvalsh`` and the T9 residual bound, as for the fully
reorthogonalised solver (the T9 property test of ``test_linalg_eigsh`` runs both modes); the
guard (the basis' measured Gram matrix) is checked by switching the ``ω`` estimate off, so that
the basis loses orthogonality on purpose.
"""

from __future__ import annotations

import numpy as np
import pytest

from specinterp.linalg import _partial, eigsh
from specinterp.testing import operator_with_spectrum, symmetric_with_eigenvalues

from .test_linalg_eigsh import _check, _spectra


@pytest.mark.parametrize("kind", ["separated", "clustered", "degenerate", "negative"])
@pytest.mark.parametrize("which", ["LA", "SA", "BE"])
def test_partial_agrees_with_eigvalsh(rng, kind, which):
    n, k, tol = 300, 4, 1e-8
    a = symmetric_with_eigenvalues(_spectra(rng, n)[kind], rng)
    lam = np.linalg.eigvalsh(a)
    res = eigsh(a, k, which=which, tol=tol, seed=1, max_iter=2000, reorthogonalize="partial")
    _check(res, lam, which, k, tol)


def _fast_top(rng, n, dtype):
    """Five well separated top eigenvalues over a bulk: they converge within a few steps, which
    is when a plain Lanczos basis loses orthogonality."""
    lam = np.concatenate([[10.0, 9.0, 8.5, 8.4, 8.39], rng.uniform(-1, 1, n - 5)])
    a = symmetric_with_eigenvalues(lam, rng).astype(dtype)
    return a, np.linalg.eigvalsh(a.astype(np.float64))


def _count_passes(monkeypatch):
    calls = []
    real = _partial.project_out

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(_partial, "project_out", counted)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_partial_skips_passes_and_keeps_vectors_orthonormal(rng, monkeypatch, dtype):
    a, lam = _fast_top(rng, 2000, dtype)
    tol = 1e-3 if dtype == np.float32 else 1e-8
    full = eigsh(a, 5, tol=tol, seed=0, return_vectors=True, reorthogonalize="full")
    passes = _count_passes(monkeypatch)
    part = eigsh(a, 5, tol=tol, seed=0, return_vectors=True, reorthogonalize="partial")
    steps = part.num_matvecs
    assert 0 < len(passes) < steps  # some steps ran on the three-term recurrence alone
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(part.values, full.values, rtol=100 * eps, atol=0)
    np.testing.assert_allclose(part.values, lam[::-1][:5], rtol=100 * eps)
    x = np.asarray(part.vectors, dtype=np.float64)
    np.testing.assert_allclose(x.T @ x, np.eye(5), atol=100 * eps)
    true_res = np.linalg.norm(a.astype(np.float64) @ x - x * part.values, axis=0)
    assert np.all(true_res <= part.residuals * (1 + 1e-3) + 10 * eps * np.max(np.abs(lam)))


def test_bounds_hold_on_a_basis_far_from_orthogonal(rng, monkeypatch):
    """With the ``ω`` estimate switched off the basis drifts from orthogonality; the Rayleigh–
    Ritz on its measured Gram matrix still gives exact Ritz pairs and true bounds — or, past
    the guard, the run starts again fully reorthogonalised."""
    monkeypatch.setattr(_partial.Omega, "needs_full", lambda *a: False)
    outcomes = []
    real = _partial.rayleigh_ritz

    def recorded(cycle):
        basis = np.asarray(cycle.store.matrix)
        outcomes.append(np.linalg.norm(basis.T @ basis - np.eye(basis.shape[1]), 2))
        return real(cycle)

    monkeypatch.setattr(_partial, "rayleigh_ritz", recorded)
    a, lam = _fast_top(rng, 1500, np.float64)
    for ncv, tol in ((20, 1e-8), (40, 1e-14)):
        res = eigsh(a, 5, tol=tol, seed=0, ncv=ncv, return_vectors=True, reorthogonalize="partial")
        _check(res, lam, "LA", 5, 1e-8)
        x = res.vectors
        np.testing.assert_allclose(x.T @ x, np.eye(5), atol=1e-12)
    # the 20-step cycle lost orthogonality far beyond √eps (1.5e-8) yet within the guard: its
    # answers above are exact all the same; the 40-step one lost it past the guard (a ghost of
    # λ_max) and was redone with full reorthogonalisation
    assert 1e-6 < outcomes[0] <= _partial.GRAM_LIMIT
    assert outcomes[-1] > _partial.GRAM_LIMIT


def test_partial_restarts_into_full_reorthogonalisation(rng):
    lam = np.concatenate([rng.uniform(-1, 1, 600), [-1.3, -1.2, -1.15]])
    op = operator_with_spectrum(lam, rng)
    kw = {"which": "SA", "tol": 1e-9, "seed": 2, "max_iter": 500, "verify": False}
    res = eigsh(op, 3, reorthogonalize="partial", **kw)
    assert res.num_matvecs > 20  # more than the first cycle (ncv = 20): restarted
    _check(res, np.sort(lam), "SA", 3, 1e-9)


def test_auto_is_partial_for_long_vectors_only_and_full_is_the_default(rng, monkeypatch):
    calls = []
    real = _partial.first_cycle
    monkeypatch.setattr(_partial, "first_cycle", lambda *a: calls.append(1) or real(*a))
    lam = np.concatenate([[50.0, 40.0, 30.0], rng.uniform(-10, 10, 20_000 - 3)])
    eigsh(operator_with_spectrum(lam, rng), 3, seed=0, verify=False, reorthogonalize="auto")
    assert len(calls) == 1
    eigsh(operator_with_spectrum(lam, rng), 3, seed=0, verify=False)  # default: full
    small = symmetric_with_eigenvalues(lam[:300], rng)
    eigsh(small, 3, seed=0, verify=False, reorthogonalize="auto")
    blocked = operator_with_spectrum(lam, rng)
    eigsh(blocked, 3, seed=0, verify=False, block_size=2, reorthogonalize="auto")
    assert len(calls) == 1


def test_bad_reorthogonalize(rng):
    a = symmetric_with_eigenvalues(np.arange(1.0, 31.0), rng)
    with pytest.raises(ValueError, match="'auto', 'full' or 'partial'"):
        eigsh(a, 2, reorthogonalize="selective")
    with pytest.raises(ValueError, match="block_size=1"):
        eigsh(a, 2, block_size=2, reorthogonalize="partial")
