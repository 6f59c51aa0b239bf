"""Exact spectra of convolutional layers (:ref:`theory-conv`).

A 2-d convolution with circular padding is block-diagonalised by the 2-d DFT (Sedghi, Gupta &
Long 2019): its singular values are those of one small complex matrix per spatial frequency,
and with a stride the output grid folds the aliased input frequencies into each block.
:func:`conv2d_singular_values` returns all of them; :func:`conv_layer_diagnostics` fits the
random-matrix laws of :mod:`specinterp.rmt` to them, as :func:`specinterp.rmt.layer_diagnostics`
does for a weight matrix. :func:`reshaped_kernel` is the other convention in use — the kernel
as the ``c_out × c_in k_h k_w`` matrix of its im2col product — which ignores the input size.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from . import _xp
from .errors import ShapeError
from .rmt import TW_UNITS, LayerDiagnostics, diagnose
from .spectra import Spectrum

Array = Any

__all__ = ["conv2d_singular_values", "conv_layer_diagnostics", "reshaped_kernel"]


def _pair(v: int | tuple[int, int], what: str) -> tuple[int, int]:
    a, b = (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))
    if a < 1 or b < 1:
        raise ValueError(f"{what} must be positive; got {v}")
    return a, b


def _block_singular_values(
    kernel: Array, input_size: tuple[int, int], stride: int | tuple[int, int]
) -> tuple[Array, tuple[int, int]]:
    """Singular values ``(m_h, m_w, r)`` of every Fourier block, and the block shape."""
    xp = _xp.namespace(kernel)
    if kernel.ndim != 4:
        raise ShapeError(f"kernel must be (c_out, c_in, k_h, k_w); got {tuple(kernel.shape)}")
    n_h, n_w = _pair(tuple(input_size), "input_size")  # type: ignore[arg-type]
    s_h, s_w = _pair(stride, "stride")
    if n_h < kernel.shape[2] or n_w < kernel.shape[3]:
        raise ShapeError(f"input size {input_size} is smaller than the kernel {kernel.shape[2:]}")
    if n_h % s_h or n_w % s_w:
        raise ShapeError(
            f"input size {input_size} is not divisible by the stride {(s_h, s_w)}: the circular "
            "strided operator is defined for divisible sizes only; pad or crop the input size"
        )
    _xp.check_real_floating(kernel, xp, "kernel")
    _xp.check_finite(kernel, xp, "kernel")
    cdtype = xp.complex128 if kernel.dtype == xp.float64 else xp.complex64
    blocks = xp.fft.fftn(xp.astype(kernel, cdtype), s=(n_h, n_w), axes=(2, 3))
    c_out, c_in = int(kernel.shape[0]), int(kernel.shape[1])
    m_h, m_w = n_h // s_h, n_w // s_w
    # frequency u = a·m_h + u': split each axis into (alias a, output frequency u')
    blocks = xp.reshape(blocks, (c_out, c_in, s_h, m_h, s_w, m_w))
    blocks = xp.permute_dims(blocks, (3, 5, 0, 2, 4, 1))  # (u', v', o, a, b, c)
    blocks = xp.reshape(blocks, (m_h, m_w, c_out, s_h * s_w * c_in))
    if s_h * s_w > 1:
        blocks = blocks / math.sqrt(s_h * s_w)
    return _xp.svdvals(blocks, xp), (c_out, s_h * s_w * c_in)


def conv2d_singular_values(
    kernel: Array, input_size: tuple[int, int], *, stride: int | tuple[int, int] = 1
) -> Array:
    """All singular values of a 2-d circular convolution (Sedghi, Gupta & Long 2019).

    For a kernel ``(c_out, c_in, k_h, k_w)`` on ``(c_in, n_h, n_w)`` inputs with circular
    padding, the operator is block-diagonalised by the 2-d DFT: its singular values are those of
    the ``n_h · n_w`` matrices ``P(u, v) = Σ_{p,q} K[:, :, p, q] e^{−2πi(up/n_h + vq/n_w)}``.
    With a stride ``(s_h, s_w)`` (dividing the input size) the output keeps every ``s``-th
    position, which folds the ``s_h s_w`` input frequencies ``(u + a n_h/s_h, v + b n_w/s_w)``
    onto one output frequency: the blocks are ``[P(u + a m_h, v + b m_w)]_{a,b} / √(s_h s_w)``,
    ``c_out × s_h s_w c_in``, one per ``(u, v)`` of the ``m_h × m_w`` output grid
    (:ref:`theory-conv`).

    Returns
    -------
    array ``(m_h · m_w · min(c_out, s_h s_w c_in),)`` in descending order, in the kernel's
    namespace (``m = n / s``); the operator's remaining singular values are zero.

    """
    s, _ = _block_singular_values(kernel, input_size, stride)
    xp = _xp.namespace(s)
    return xp.sort(xp.reshape(s, (-1,)), descending=True)


def _one_of_each_conjugate_pair(m_h: int, m_w: int) -> np.ndarray:
    """Mask of the frequencies ``(u, v)`` that precede their partner ``(−u, −v)``.

    For a real kernel the blocks at ``(u, v)`` and ``(−u, −v)`` are complex conjugates (up to
    a permutation of the aliased column groups) and share their singular values.
    """
    u, v = np.meshgrid(np.arange(m_h), np.arange(m_w), indexing="ij")
    index = u * m_w + v
    partner = ((-u) % m_h) * m_w + (-v) % m_w
    return (index <= partner).reshape(-1)


def conv_layer_diagnostics(
    kernel: Array,
    input_size: tuple[int, int],
    *,
    stride: int | tuple[int, int] = 1,
    method: Literal["robust", "moment"] = "robust",
) -> LayerDiagnostics:
    """Random-matrix diagnostics of a circular convolution's exact spectrum.

    Each Fourier block is a ``c_out × s_h s_w c_in`` matrix whose entries, for a kernel with
    i.i.d. entries of variance ``σ²``, have variance ``k_h k_w σ² / (s_h s_w)``: the pooled
    ESD ``λ = σ_i² / n`` (``n`` the block's longer side) follows Marchenko–Pastur with
    ``q = min/max`` of the block's sides. The laws are fitted to one block of each conjugate
    pair (the pair's singular values coincide, and counting them twice would halve every
    standard error); stable rank and entropy are those of the whole operator. Spikes are the
    eigenvalues above the edge plus a Tracy–Widom margin for one block, widened for the largest
    of ``B`` blocks (``s_B^{3/2} = s^{3/2} + (3/2) log B``, Bonferroni on TW₁'s tail).

    With a stride that does not divide the kernel size, the polyphase components of the kernel
    (the taps that land on each alias) have different numbers of taps, the block's columns a
    variance profile, and the pooled ESD departs from Marchenko–Pastur even at initialisation:
    there, excess above the fitted edge is not by itself evidence of learned structure.

    Returns
    -------
    LayerDiagnostics
        ``shape`` is the operator's ``(c_out m_h m_w, c_in n_h n_w)``.

    """
    s, (rows, cols) = _block_singular_values(kernel, input_size, stride)
    xp = _xp.namespace(s)
    m_h, m_w, r = (int(d) for d in s.shape)
    flat = xp.reshape(s, (m_h * m_w, r))
    n_h, n_w = (int(d) for d in input_size)
    shape = (int(kernel.shape[0]) * m_h * m_w, int(kernel.shape[1]) * n_h * n_w)
    spec = Spectrum.from_singular_values(xp.reshape(flat, (-1,)), shape=shape)
    keep = _one_of_each_conjugate_pair(m_h, m_w)
    half = _xp.to_numpy(flat).astype(np.float64)[keep].reshape(-1)
    longer = max(rows, cols)
    lam = np.sort(half * half / longer)
    # the largest of B blocks' top eigenvalues: Bonferroni on TW₁'s tail e^{−(2/3)s^{3/2}}
    num_blocks = int(np.count_nonzero(keep))
    tw_units = (TW_UNITS**1.5 + 1.5 * math.log(num_blocks)) ** (2 / 3)
    q = min(rows, cols) / longer
    return diagnose(
        lam, q, spec, shape, method=method, block_rows=min(rows, cols), tw_units=tw_units
    )


def reshaped_kernel(kernel: Array) -> Array:
    """The kernel ``(c_out, c_in, k_h, k_w)`` as the ``c_out × c_in k_h k_w`` im2col matrix."""
    xp = _xp.namespace(kernel)
    if kernel.ndim != 4:
        raise ShapeError(f"kernel must be (c_out, c_in, k_h, k_w); got {tuple(kernel.shape)}")
    return xp.reshape(kernel, (int(kernel.shape[0]), -1))
