"""The Krylov basis store: growth up to its limit keeps every column, and projections stay exact."""

from __future__ import annotations

import numpy as np
import pytest

from specinterp.linalg._orth import Basis, project_out

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_basis_grows_to_its_limit_and_keeps_its_columns(backend, rng):
    n, limit = 50, 11
    q, _ = np.linalg.qr(rng.standard_normal((n, limit)))
    as_array = (lambda a: a) if backend == "numpy" else torch.from_numpy
    store = Basis(as_array(q[:, 0]), 2, limit=limit)
    for j in range(limit):
        store.append(as_array(q[:, j]))
    assert store.capacity == limit  # 2 → 4 → 8 → 11
    np.testing.assert_array_equal(np.asarray(store.matrix), q)
    w = rng.standard_normal(n)
    left, coef = project_out(store, as_array(w))
    np.testing.assert_allclose(coef, q.T @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(left), w - q @ (q.T @ w), atol=1e-12)
    with pytest.raises(RuntimeError, match="capacity exceeded"):
        store.append(as_array(q[:, 0]))


def test_basis_without_limit_does_not_grow(rng):
    store = Basis(rng.standard_normal(5), 1)
    store.append(np.eye(5)[0])
    with pytest.raises(RuntimeError, match="capacity exceeded"):
        store.append(np.eye(5)[1])
