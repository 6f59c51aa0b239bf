"""Partially reorthogonalised Lanczos tridiagonalisation (SLQ's run) on long float32 vectors.

Truth: the fully reorthogonalised run from the same start, and the spectrum itself (a
diagonal operator): Ritz values lie inside it, and the Gauss rule of a semi-orthogonal basis
is within ``√eps ‖A‖`` (Wasserstein-1) of the fully reorthogonalised one.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from specinterp import _xp
from specinterp.linalg import LinearOperator, _partial, lanczos_tridiagonal
from specinterp.linalg import tridiagonal as tri

torch = pytest.importorskip("torch")


def _hessian_like(n: int, seed: int = 1) -> tuple[LinearOperator, object, float]:
    """A trained network's Hessian spectrum: outliers over a narrow bulk and many zeros."""
    rng = np.random.default_rng(seed)
    lam = np.concatenate(
        [[21, 16.7, 12.5, 9.8, 7.8, 7.5, 4.4, 3.9], rng.uniform(-0.3, 1.0, n // 3)]
    )
    lam = np.concatenate([lam, np.zeros(n - lam.size)])
    d = torch.tensor(rng.permutation(lam), dtype=torch.float32)
    op = LinearOperator(
        (n, n), lambda v: d * v, symmetric=True, dtype=torch.float32, xp=_xp.namespace(d)
    )
    return op, torch.tensor(rng.standard_normal(n), dtype=torch.float32), float(np.abs(lam).max())


def _rule(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.diag(alpha) + np.diag(beta[: alpha.size - 1], 1) + np.diag(beta[: alpha.size - 1], -1)
    nodes, vecs = np.linalg.eigh(t)
    return nodes, vecs[0] ** 2


def test_partial_gauss_rule_on_four_hundred_thousand_float32_coordinates():
    # float32 vector work of this length rounds at ~eps √n per step: Simon's estimate with
    # an eps-sized rounding term let the basis lose all orthogonality (Ritz values up to 33
    # on a spectrum that ends at 21)
    op, v0, top = _hessian_like(400_000)
    rules = {}
    for mode in ("full", "partial"):
        alpha, beta, steps = lanczos_tridiagonal(op, v0, 60, reorthogonalize=mode)
        assert steps == 60
        rules[mode] = _rule(alpha, beta)
    nodes, weights = rules["partial"]
    eps = float(np.finfo(np.float32).eps)
    slack = np.sqrt(eps) * top  # the stated accuracy of the partially reorthogonalised rule
    assert nodes.max() <= top + slack and nodes.min() >= -0.3 - slack
    w1 = wasserstein_distance(rules["full"][0], nodes, rules["full"][1], weights)
    assert w1 <= slack


def test_a_basis_that_lost_orthogonality_is_run_again_fully(monkeypatch):
    # the estimate models the rounding; the finished basis is checked, and a run whose
    # estimate never called a pass (here: forced) is repeated with full reorthogonalisation
    op, v0, _ = _hessian_like(20_000, seed=2)
    monkeypatch.setattr(_partial.Omega, "needs_full", lambda self, *args: False)
    checked = []
    real = tri.semi_orthogonal
    monkeypatch.setattr(tri, "semi_orthogonal", lambda *a: checked.append(real(*a)) or checked[-1])
    alpha, beta, steps = lanczos_tridiagonal(op, v0, 80, reorthogonalize="partial")
    assert checked == [False]  # the three-term recurrence alone lost orthogonality here
    assert steps == 160  # both runs' products are counted
    full = lanczos_tridiagonal(op, v0, 80, reorthogonalize="full")
    np.testing.assert_array_equal(alpha, full[0])
    np.testing.assert_array_equal(beta, full[1])
