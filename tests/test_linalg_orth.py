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


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_basis_reuses_a_finished_basis_storage_only_where_it_fits(backend, rng):
    n = 40
    as_array = (lambda a: a) if backend == "numpy" else torch.from_numpy
    old = Basis(as_array(rng.standard_normal(n)), 6)
    old.append(as_array(np.eye(n)[0]))
    buf = old._buf
    # too few rows, another length, another dtype: fresh storage, the old basis untouched
    for like, rows in ((rng.standard_normal(n), 7), (rng.standard_normal(n + 1), 2)):
        assert Basis(as_array(like), rows, reuse=old)._buf is not buf
    assert Basis(as_array(rng.standard_normal(n).astype(np.float32)), 2, reuse=old)._buf is not buf
    assert old.size == 1
    q, _ = np.linalg.qr(rng.standard_normal((n, 9)))
    new = Basis(as_array(q[:, 0]), 3, limit=9, reuse=old)
    assert new._buf is buf and new.capacity == 6 and old._buf is None
    for j in range(9):  # grows past the reused rows as its own storage would
        new.append(as_array(q[:, j]))
    np.testing.assert_array_equal(np.asarray(new.matrix), q)
    with pytest.raises(RuntimeError, match="gave its storage"):
        old.append(as_array(q[:, 0]))


def test_eigsh_vectors_are_row_major_eigenvectors(rng):
    """The solver forms its Ritz vectors as rows (each contiguous for the check); what it
    returns is the usual row-major ``(n, k)`` block, columns the eigenvectors."""
    import specinterp as si

    n, k = 300, 4
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([[9.0, 7.0, 5.0, 4.0], rng.uniform(-1, 1, n - 4)])
    a = torch.from_numpy((q * lam) @ q.T)
    res = si.linalg.eigsh(a, k, tol=1e-10, return_vectors=True)
    assert res.verified and res.vectors.is_contiguous()
    x = res.vectors.numpy()
    np.testing.assert_allclose(res.values.numpy(), lam[:k], rtol=1e-10)
    np.testing.assert_allclose(np.abs(x.T @ q[:, :k]), np.eye(k), atol=1e-7)
