"""Krylov runs on JAX: the same answers as on NumPy, without a compilation per step.

JAX compiles each eager operation once per input shape; a Krylov basis that grows by a column
per step gave every step new shapes. The basis is now a fixed-shape buffer and the
orthogonalisation pass one compiled program, so the number of compilations of a run must not
grow with its number of steps (it grows with the buffer's 16-row blocks only).
"""

from __future__ import annotations

import numpy as np
import pytest

import specinterp as si

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")


@pytest.fixture(autouse=True)
def _x64():
    jax.config.update("jax_enable_x64", True)


def _operator(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([np.linspace(0.0, 1.0, n - 10), np.geomspace(3.0, 30.0, 10)])
    return (q * lam) @ q.T


@pytest.mark.parametrize("reorthogonalize", ["full", "partial"])
def test_slq_on_jax_equals_numpy(reorthogonalize):
    a = _operator(300)
    kw = dict(num_probes=2, num_steps=40, seed=0, reorthogonalize=reorthogonalize)
    dn = si.linalg.spectral_density(a, **kw)
    dj = si.linalg.spectral_density(jnp.asarray(a), **kw)
    np.testing.assert_allclose(np.asarray(dj.nodes), np.asarray(dn.nodes), atol=1e-11)
    np.testing.assert_allclose(np.asarray(dj.weights), np.asarray(dn.weights), atol=1e-12)


def test_eigsh_and_svds_on_jax_equal_numpy_and_the_dense_truth():
    a = _operator(300, seed=1)
    truth = np.sort(np.linalg.eigvalsh(a))[::-1][:5]
    rn, rj = si.linalg.eigsh(a, 5, seed=0), si.linalg.eigsh(jnp.asarray(a), 5, seed=0)
    np.testing.assert_allclose(np.asarray(rj.values), truth, rtol=1e-10)
    assert rj.num_matvecs == rn.num_matvecs and rj.verified
    b = a[:, :200]
    sv = np.linalg.svd(b, compute_uv=False)[:4]
    sj = si.linalg.svds(jnp.asarray(b), 4, seed=0)
    np.testing.assert_allclose(np.asarray(sj.values), sv, rtol=1e-10)


def _compilations(run) -> int:
    from jax._src import monitoring

    count = [0]

    def listener(event: str, *args, **kwargs) -> None:
        if "backend_compile" in event:
            count[0] += 1

    monitoring.register_event_duration_secs_listener(listener)
    try:
        run()
    finally:
        monitoring.unregister_event_duration_listener(listener)
    return count[0]


def test_compilations_do_not_grow_with_the_number_of_steps():
    a = jnp.asarray(_operator(257, seed=2))  # a size no other test compiles for
    op = si.linalg.aslinearoperator(a)
    v0 = jnp.ones(257)
    short = _compilations(lambda: si.linalg.lanczos_tridiagonal(op, v0, 32))
    long = _compilations(lambda: si.linalg.lanczos_tridiagonal(op, v0, 96))
    # 64 more steps: at most a few new programs for the larger buffer (its 16-row blocks),
    # where a basis growing by a column compiled several programs per step
    assert long <= short + 8, (short, long)
