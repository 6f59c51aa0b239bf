"""Exact convolution spectra (theory §4, Convolutions): every singular value of the dense
strided circular operator to 1e-12, and the random-matrix diagnostics of those spectra against
Marchenko–Pastur at initialisation and with a planted spike."""

from __future__ import annotations

import numpy as np
import pytest

from specinterp import rmt
from specinterp.conv_spectra import (
    conv2d_singular_values,
    conv_layer_diagnostics,
    reshaped_kernel,
)
from specinterp.errors import ShapeError
from specinterp.spectra import Spectrum


def _dense_circular_conv(kernel: np.ndarray, n: int, stride: int = 1) -> np.ndarray:
    """The circular cross-correlation y[o,i,j] = Σ K[o,c,p,q] x[c,si+p,sj+q] as a dense matrix
    (output (i, j) on the n/s × n/s grid)."""
    c_out, c_in, kh, kw = kernel.shape
    m = n // stride
    mat = np.zeros((c_out * m * m, c_in * n * n))
    for o in range(c_out):
        for i_ in range(m):
            for j_ in range(m):
                row = (o * m + i_) * m + j_
                i, j = stride * i_, stride * j_
                for c in range(c_in):
                    for p in range(kh):
                        for q_ in range(kw):
                            col = (c * n + (i + p) % n) * n + (j + q_) % n
                            mat[row, col] += kernel[o, c, p, q_]
    return mat


@pytest.mark.parametrize(("c_out", "c_in"), [(3, 2), (2, 4)])
def test_conv_singular_values_match_dense_operator(xp, rng, c_out, c_in):
    kernel = rng.standard_normal((c_out, c_in, 3, 3))
    n = 6
    dense = np.linalg.svd(_dense_circular_conv(kernel, n), compute_uv=False)
    got = xp.to_numpy(conv2d_singular_values(xp.asarray(kernel), (n, n)))
    np.testing.assert_allclose(got, dense[: got.size], rtol=xp.rtol * 100, atol=xp.rtol * 10)


@pytest.mark.parametrize("stride", [1, 2, (2, 1)])
@pytest.mark.parametrize(("c_out", "c_in"), [(3, 2), (8, 2), (2, 5)])
def test_strided_conv_singular_values_to_1e_12(stride, c_out, c_in):
    # float64: the Fourier blocks (aliased frequencies side by side for a stride) give every
    # singular value of the dense strided operator to 1e-12, zeros included in the count
    rng = np.random.default_rng(c_out * 10 + c_in)
    kernel = rng.standard_normal((c_out, c_in, 3, 3))
    n = 8
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if sh == sw:
        mat = _dense_circular_conv(kernel, n, sh)
    else:  # stride only along rows: subsample the stride-1 operator's output rows
        full = _dense_circular_conv(kernel, n, 1).reshape(c_out, n, n, -1)
        mat = full[:, ::sh, ::sw].reshape(-1, c_in * n * n)
    dense = np.linalg.svd(mat, compute_uv=False)
    got = conv2d_singular_values(kernel, (n, n), stride=stride)
    assert got.size == (n // sh) * (n // sw) * min(c_out, sh * sw * c_in)
    np.testing.assert_allclose(got, dense[: got.size], rtol=0, atol=1e-12 * dense[0])
    np.testing.assert_allclose(dense[got.size :], 0.0, atol=1e-12 * dense[0])
    with pytest.raises(ShapeError, match="divisible"):
        conv2d_singular_values(kernel, (7, 7), stride=2)


@pytest.mark.parametrize(("size", "stride"), [(3, 1), (4, 2), (5, 1)])
def test_null_kernel_follows_marchenko_pastur(size, stride):
    # i.i.d. N(0, 0.01) taps: each Fourier block has entries of variance k²σ²/s², so the pooled
    # ESD is MP(q = 1/2, k²σ²/s²) — fitted σ² within 3 %, KS below 0.03, and no spike past the
    # Bonferroni-widened Tracy–Widom margin (3 seeds each)
    for seed in range(3):
        kernel = np.random.default_rng(seed).normal(0.0, 0.1, (64, 32, size, size))
        d = conv_layer_diagnostics(kernel, (16, 16), stride=stride)
        assert d.law.ratio == pytest.approx(0.5)
        assert d.law.sigma2 == pytest.approx(size * size * 0.01 / stride**2, rel=0.03)
        assert d.ks_distance < 0.03
        assert d.num_spikes == 0


def test_planted_spike_and_whole_operator_statistics():
    # a rank-one kernel component at the centre tap adds θ u vᵀ to every Fourier block: each
    # block's top eigenvalue leaves the bulk; stable rank and entropy are those of the dense
    # operator's singular values
    rng = np.random.default_rng(4)
    kernel = rng.normal(0.0, 0.1, (24, 12, 3, 3))
    u, v = rng.standard_normal(24), rng.standard_normal(12)
    kernel[:, :, 1, 1] += 4.0 * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    n = 8
    d = conv_layer_diagnostics(kernel, (n, n))
    half_plane = (n * n + 4) // 2  # conjugate pairs once, the 4 self-conjugate frequencies once
    assert d.eigenvalues.size == half_plane * 12 and d.num_spikes >= half_plane // 2
    dense = Spectrum.from_matrix(_dense_circular_conv(kernel, n))
    assert d.stable_rank == pytest.approx(float(dense.stable_rank()), rel=1e-10)
    assert d.entropy == pytest.approx(float(dense.entropy()), rel=1e-10)
    assert d.shape == (24 * n * n, 12 * n * n)


def test_reshaped_convention_and_old_import():
    kernel = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(reshaped_kernel(kernel)[1], kernel[1].ravel())
    assert rmt.conv2d_singular_values is conv2d_singular_values
    with pytest.raises(ShapeError, match="c_out"):
        reshaped_kernel(kernel[0])
    with pytest.raises(ValueError, match="stride"):
        conv2d_singular_values(kernel, (4, 4), stride=0)
