"""LinearOperator: every product and every algebraic combination against the dense matrix."""

from __future__ import annotations

import numpy as np
import pytest

from specinterp.errors import DTypeError, NamespaceMismatchError, NonFiniteError, ShapeError
from specinterp.linalg import LinearOperator, aslinearoperator, eigsh


def test_products_match_dense(xp_eager, rng):
    xp = xp_eager
    a_np = rng.standard_normal((5, 3))
    op = aslinearoperator(xp.asarray(a_np))
    v, u = rng.standard_normal(3), rng.standard_normal(5)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((5, 2))
    np.testing.assert_allclose(xp.to_numpy(op.matvec(xp.asarray(v))), a_np @ v, rtol=xp.rtol * 10)
    np.testing.assert_allclose(xp.to_numpy(op @ xp.asarray(x)), a_np @ x, rtol=xp.rtol * 10)
    np.testing.assert_allclose(
        xp.to_numpy(op.rmatvec(xp.asarray(u))), a_np.T @ u, rtol=xp.rtol * 10
    )
    np.testing.assert_allclose(xp.to_numpy(op.T @ xp.asarray(y)), a_np.T @ y, rtol=xp.rtol * 10)
    assert not op.symmetric


def test_algebra_matches_dense(xp_eager, rng):
    xp = xp_eager
    a_np, b_np, c_np = (rng.standard_normal(s) for s in ((4, 4), (4, 4), (4, 6)))
    a, b, c = (aslinearoperator(xp.asarray(m)) for m in (a_np, b_np, c_np))
    x = rng.standard_normal((4, 3))
    cases = {
        "sum": (a + b, a_np + b_np),
        "difference": (a - b, a_np - b_np),
        "scalar": (2.5 * a, 2.5 * a_np),
        "negation": (-a, -a_np),
        "composition": (a @ b, a_np @ b_np),
    }
    for name, (op, dense) in cases.items():
        got = xp.to_numpy(op.matmat(xp.asarray(x)))
        np.testing.assert_allclose(got, dense @ x, rtol=xp.rtol * 100, err_msg=name)
        got_t = xp.to_numpy(op.rmatmat(xp.asarray(x)))
        np.testing.assert_allclose(got_t, dense.T @ x, rtol=xp.rtol * 100, err_msg=name)
    comp = a @ c
    assert comp.shape == (4, 6)
    z = rng.standard_normal((6, 2))
    np.testing.assert_allclose(
        xp.to_numpy(comp @ xp.asarray(z)), a_np @ c_np @ z, rtol=xp.rtol * 100
    )


def test_symmetry_detection_and_flags(rng):
    s = rng.standard_normal((5, 5))
    assert aslinearoperator(s + s.T).symmetric
    assert not aslinearoperator(s).symmetric
    assert not aslinearoperator(s + s.T, symmetric=False).symmetric
    sym = aslinearoperator(s + s.T)
    assert sym.T is sym
    assert (sym + sym).symmetric and (3.0 * sym).symmetric


def test_matvec_only_operator_builds_columnwise_matmat(rng):
    a = rng.standard_normal((3, 4))
    calls = []

    def mv(v):
        calls.append(1)
        return a @ v

    op = LinearOperator((3, 4), mv)
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(op.matmat(x), a @ x)
    assert len(calls) == 5
    with pytest.raises(NotImplementedError, match="rmatvec"):
        op.rmatvec(np.ones(3))


def test_shape_dtype_and_namespace_errors(rng):
    op = aslinearoperator(rng.standard_normal((3, 4)))
    with pytest.raises(ShapeError, match=r"shape \(4,\)"):
        op.matvec(np.ones(3))
    with pytest.raises(ShapeError, match=r"\(4, k\)"):
        op.matmat(np.ones((3, 2)))
    with pytest.raises(DTypeError, match="no silent"):
        op.matvec(np.ones(4, dtype=np.float32))
    with pytest.raises(ShapeError, match="compose"):
        op @ op
    with pytest.raises(ShapeError, match="add"):
        op + aslinearoperator(np.ones((4, 3)))
    with pytest.raises(ShapeError, match="square"):
        LinearOperator((3, 4), lambda v: v, symmetric=True)
    with pytest.raises(TypeError, match="matvec"):
        LinearOperator((3, 3))
    with pytest.raises(DTypeError, match="real floating"):
        LinearOperator((3, 3), lambda v: v, dtype=np.int64)
    torch = pytest.importorskip("torch")
    with pytest.raises(NamespaceMismatchError, match="convert it explicitly"):
        op.matvec(torch.ones(4, dtype=torch.float64))


def test_dask_is_refused_with_advice():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="in-memory arrays"):
        aslinearoperator(da.from_array(np.eye(3)))


def test_gram_compositions_are_symmetric_psd_and_solvable(rng):
    # Bᵀ B and B Bᵀ of a rectangular operator are symmetric PSD by construction, so eigsh
    # takes them without a symmetric= flag; their eigenvalues are the squared singular values
    b = rng.standard_normal((30, 12))
    op = aslinearoperator(b)
    gram, outer = op.T @ op, op @ op.T
    assert gram.symmetric and gram.positive_semidefinite and outer.positive_semidefinite
    top = eigsh(gram, 3, seed=0)
    sv = np.linalg.svd(b, compute_uv=False)
    np.testing.assert_allclose(top.values, sv[:3] ** 2, rtol=1e-10)
    # structure that is not guaranteed is not claimed
    other = aslinearoperator(rng.standard_normal((30, 12)))
    assert not (other.T @ op).symmetric
    assert (2.0 * gram).positive_semidefinite and not (-1.0 * gram).positive_semidefinite
    assert (gram + 3.0 * gram).positive_semidefinite


def test_scipy_sparse_matrices_and_operators_are_matrix_free(rng):
    """A scipy.sparse matrix or array (any format) and a scipy LinearOperator are used through
    their products — never densified — and give the dense eigen- and singular values; symmetry
    is detected (exactly on a sparse matrix, by one random probe on an operator)."""
    sp = pytest.importorskip("scipy.sparse")
    sla = pytest.importorskip("scipy.sparse.linalg")
    from specinterp.linalg import svds, trace

    s = sp.random(400, 400, density=0.02, random_state=1, format="csr")
    s = (s + s.T).astype(np.float64)
    dense = s.toarray()
    top = np.sort(np.linalg.eigvalsh(dense))[::-1][:4]
    for form in (s, s.tocoo(), sp.csr_array(s), sla.aslinearoperator(s)):
        op = aslinearoperator(form)
        assert op.symmetric and op.xp.__name__.endswith("numpy")
        np.testing.assert_allclose(np.asarray(eigsh(form, 4).values), top, rtol=1e-10)
    est = trace(s, num_matvecs=800)  # XTrace, within its stated standard error
    assert abs(est.estimate - dense.trace()) <= 3 * est.stderr < 1e-3 * abs(dense.trace())

    r = sp.random(300, 120, density=0.05, random_state=2, format="csc", dtype=np.float32)
    want = np.linalg.svd(r.toarray().astype(np.float64), compute_uv=False)[:3]
    for form in (r, sla.aslinearoperator(r)):
        assert not aslinearoperator(form).symmetric
        np.testing.assert_allclose(np.asarray(svds(form, 3).values), want, rtol=1e-5)

    skew = sp.random(50, 50, density=0.1, random_state=3, format="csr")
    for form in (skew - skew.T + sp.eye(50), sla.aslinearoperator(skew - skew.T)):
        with pytest.raises(ValueError, match="symmetric"):
            eigsh(form, 2)
    with pytest.raises(DTypeError, match="real floating"):
        aslinearoperator(sp.eye(5, dtype=np.int64, format="csr"))
    bad = sp.eye(5, format="csr")
    bad.data[0] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        aslinearoperator(bad)
    import specinterp as si

    with pytest.raises(TypeError, match=r"SciPy sparse csr_matrix.*\.toarray\(\)"):
        si.singular_values(s)  # the dense statistics: numpy.asarray would not densify it
    no_adjoint = sla.LinearOperator((6, 4), matvec=lambda v: np.ones(6) * v.sum(), dtype=float)
    with pytest.raises(ValueError, match="rmatvec"):
        svds(no_adjoint, 1)
