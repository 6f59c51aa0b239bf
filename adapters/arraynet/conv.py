"""2-d convolution as an arraynet layer (im2col, and its adjoint for the backward passes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_extra as xpx
import numpy as np

from specinterp import _xp

from .layer import Layer

Array = Any

__all__ = ["Conv2d"]


@dataclass(frozen=True)
class Conv2d(Layer):
    """2-d cross-correlation ``(N, c_in, H, W) → (N, c_out, H_o, W_o)`` by im2col.

    ``weight (c_out, c_in, k_h, k_w)`` and ``bias (c_out,)`` as in ``torch.nn.Conv2d`` with
    zero padding, ``dilation = 1``, ``groups = 1``.
    """

    weight: Array
    bias: Array | None = None
    stride: int = 1
    padding: int = 0

    @property
    def params(self) -> tuple[Array, ...]:  # type: ignore[override]
        return (self.weight,) if self.bias is None else (self.weight, self.bias)

    def with_params(self, params: list[Array]) -> Conv2d:
        return Conv2d(
            params[0], params[1] if self.bias is not None else None, self.stride, self.padding
        )

    # ---- im2col and its adjoint
    def _geometry(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        kh, kw = int(self.weight.shape[2]), int(self.weight.shape[3])
        ho = (int(shape[2]) + 2 * self.padding - kh) // self.stride + 1
        wo = (int(shape[3]) + 2 * self.padding - kw) // self.stride + 1
        return kh, kw, ho, wo

    def _cols(self, h: Array) -> Array:
        xp = _xp.namespace(h)
        kh, kw, ho, wo = self._geometry(tuple(h.shape))
        p, s = self.padding, self.stride
        if p:
            h = xpx.pad(h, ((0, 0), (0, 0), (p, p), (p, p)), xp=xp)
        patches = [
            h[:, :, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]
            for i in range(kh)
            for j in range(kw)
        ]
        cols = xp.stack(patches, axis=2)  # (N, c_in, kh·kw, ho, wo)
        return xp.reshape(cols, (int(h.shape[0]), -1, ho * wo))

    def _uncols(self, dcols: Array, shape: tuple[int, ...]) -> Array:
        """The adjoint of :meth:`_cols`: ``(N, c·kh·kw, ho·wo) → (N, c, H, W)``."""
        kh, kw, ho, wo = self._geometry(shape)
        n, c, hh, ww = (int(v) for v in shape)
        d = _xp.namespace(dcols).reshape(dcols, (n, c, kh, kw, ho, wo))
        return self._add_taps(lambda i, j: d[:, :, i, j, ...], (n, c), (hh, ww), ())

    def _add_taps(
        self, tap: Any, lead: tuple[int, ...], size: tuple[int, int], trail: tuple[int, ...]
    ) -> Array:
        """The adjoint of im2col: every tap's block added at its strided place in the image.

        Tap ``(i, j)``'s ``(*lead, ho, wo, *trail)`` block belongs at rows ``i − p + s·t`` and
        columns ``j − p + s·u`` of the ``(*lead, H, W, *trail)`` image; the entries that fall
        into the zero padding are dropped (their range is clipped, so no padded image is formed
        and the result is contiguous). On writeable arrays whose ``H`` and ``W`` the stride
        divides, the image is filled one residue class of rows and columns at a time
        (:func:`_taps_by_residue`); otherwise the taps are added into a zero image.
        """
        first = tap(0, 0)
        xp = _xp.namespace(first)
        kh, kw = int(self.weight.shape[2]), int(self.weight.shape[3])
        (hh, ww), p, s = size, self.padding, self.stride
        ho, wo = (int(first.shape[len(lead) + k]) for k in range(2))
        shape = (*lead, hh, ww, *trail)
        keep, tail = (slice(None),) * len(lead), (slice(None),) * len(trail)
        rows = [_valid(i, p, s, ho, hh) for i in range(kh)]
        cols = [_valid(j, p, s, wo, ww) for j in range(kw)]
        if _xp.has_writeable_storage(first) and hh % s == 0 and ww % s == 0:
            return _taps_by_residue(tap, xp, first, shape, (keep, tail), (rows, cols), p, s)
        out = xp.zeros(shape, dtype=first.dtype, device=_xp.device(first))
        # a fresh buffer: add in place where the backend can (a copy per tap doubled the time)
        copy = False if _xp.has_writeable_storage(out) else None
        for i, (t0, t1) in enumerate(rows):
            for j, (u0, u1) in enumerate(cols):
                if t0 >= t1 or u0 >= u1:
                    continue
                r = slice(i - p + s * t0, i - p + s * (t1 - 1) + 1, s)
                c = slice(j - p + s * u0, j - p + s * (u1 - 1) + 1, s)
                block = tap(i, j)[(*keep, slice(t0, t1), slice(u0, u1), *tail)]
                out = xpx.at(out, (*keep, r, c, *tail)).add(block, copy=copy)
        return out

    def input_pullback(self, cache: Any) -> Callable[[Array], Array]:
        """Batch-last ``(c_out, ho, wo, N) → (c_in, H, W, N)``.

        One GEMM ``Wᵀ G`` over the whole batch, then the im2col adjoint, whose tap additions
        each run over ``N`` contiguous entries (batch-first, they run over one ``wo``-long image
        row at a time).
        """
        h, _ = cache
        shape = tuple(int(v) for v in h.shape)
        kh, kw, ho, wo = self._geometry(shape)
        wt = self._wmat(self.weight).T  # (c_in·kh·kw, c_out)

        scratch: list[Array] = []  # NumPy: one GEMM output buffer for the C calls

        def pull(g: Array) -> Array:
            xp = _xp.namespace(g)
            b = int(g.shape[-1])
            g2 = xp.reshape(g, (int(g.shape[0]), -1))
            if isinstance(g2, np.ndarray) and isinstance(wt, np.ndarray):
                # dcols never leaves this call: reuse its memory instead of faulting in fresh
                # pages for every output unit (≈ 30 MB a call on a CIFAR-sized batch)
                want, dtype = (int(wt.shape[0]), int(g2.shape[1])), np.result_type(wt, g2)
                if not scratch or scratch[0].shape != want or scratch[0].dtype != dtype:
                    scratch[:] = [np.empty(want, dtype=dtype)]
                dcols = np.matmul(wt, g2, out=scratch[0])
            else:
                dcols = wt @ g2  # (c_in·kh·kw, ho·wo·N)
            d = xp.reshape(dcols, (shape[1], kh, kw, ho, wo, b))
            return self._add_taps(lambda i, j: d[:, i, j, ...], (shape[1],), shape[2:], (b,))

        return pull

    def _wmat(self, w: Array) -> Array:
        return _xp.namespace(w).reshape(w, (int(w.shape[0]), -1))

    def _out(self, mat: Array, shape: tuple[int, ...], bias: Array | None) -> Array:
        xp = _xp.namespace(mat)
        _, _, ho, wo = self._geometry(shape)
        out = xp.reshape(mat, (int(mat.shape[0]), int(mat.shape[1]), ho, wo))
        return out if bias is None else out + bias[None, :, None, None]

    def forward(self, h: Array) -> tuple[Array, Any]:
        cols = self._cols(h)
        return self._out(self._wmat(self.weight) @ cols, tuple(h.shape), self.bias), (h, cols)

    def jvp(self, cache: Any, dh: Array | None, dp: list[Array] | None) -> Array:
        h, cols = cache
        xp = _xp.namespace(h)
        mat = 0.0 if dh is None else self._wmat(self.weight) @ self._cols(dh)
        bias = None
        if dp is not None:
            mat = mat + self._wmat(dp[0]) @ cols
            bias = dp[1] if self.bias is not None else None
        if isinstance(mat, float):
            mat = xp.zeros_like(self._wmat(self.weight) @ cols)
        return self._out(mat, tuple(h.shape), bias)

    def _gmat(self, g: Array) -> Array:
        xp = _xp.namespace(g)
        return xp.reshape(g, (int(g.shape[0]), int(g.shape[1]), -1))

    def vjp(self, cache: Any, g: Array, per_sample: bool = False) -> tuple[Array, list[Array]]:
        h, _ = cache
        dh = self._uncols(self._wmat(self.weight).T @ self._gmat(g), tuple(h.shape))
        return dh, self.vjp_params(cache, g, per_sample)

    def vjp_params(self, cache: Any, g: Array, per_sample: bool = False) -> list[Array]:
        """Weight (and bias) gradients without the im2col adjoint of the input gradient."""
        _, cols = cache
        xp = _xp.namespace(g)
        gm = self._gmat(g)
        per = gm @ xp.permute_dims(cols, (0, 2, 1))  # (N, c_out, c_in·kh·kw)
        dw = per if per_sample else xp.sum(per, axis=0)
        dw = xp.reshape(dw, ((int(g.shape[0]),) if per_sample else ()) + tuple(self.weight.shape))
        grads = [dw]
        if self.bias is not None:
            db = xp.sum(gm, axis=2)
            grads.append(db if per_sample else xp.sum(db, axis=0))
        return grads

    def param_jacobian_block(self, cache: Any, cots: Array, out: Array) -> None:
        """Per-sample weight gradients for all ``C`` cotangents as one batched product (NumPy).

        ``dW[i, a] = G_a[i] colsᵢᵀ`` with ``G_a[i]`` ``(c_out, ho·wo)``: stacked over ``a``, each
        sample's ``(C·c_out, ho·wo) @ (ho·wo, c_in·kh·kw)`` is one GEMM on a contiguous block
        of ``cots`` ``(N, C, c_out, ho, wo)``.
        """
        _, cols = cache
        n, c, c_out = int(cots.shape[0]), int(cots.shape[1]), int(cots.shape[2])
        g = np.reshape(cots, (n, c * c_out, -1))  # (N, C·c_out, ho·wo), a view
        k = int(cols.shape[1])
        dw = np.matmul(g, np.transpose(cols, (0, 2, 1)))  # (N, C·c_out, c_in·kh·kw)
        out[:, :, : c_out * k] = np.reshape(dw, (n, c, c_out * k))
        if self.bias is not None:
            out[:, :, c_out * k :] = np.reshape(np.sum(g, axis=2), (n, c, c_out))

    def vjp_input(self, cache: Any, g: Array) -> Array:
        h, _ = cache
        return self._uncols(self._wmat(self.weight).T @ self._gmat(g), tuple(h.shape))

    def rvjp(
        self, cache: Any, g: Array, rg: Array, rh: Array, vp: list[Array]
    ) -> tuple[Array, list[Array]]:
        h, cols = cache
        xp = _xp.namespace(g)
        gm, rgm = self._gmat(g), self._gmat(rg)
        dcols = self._wmat(self.weight).T @ rgm + self._wmat(vp[0]).T @ gm
        r_dh = self._uncols(dcols, tuple(h.shape))
        rcols = self._cols(rh)
        dw = xp.sum(
            rgm @ xp.permute_dims(cols, (0, 2, 1)) + gm @ xp.permute_dims(rcols, (0, 2, 1)), axis=0
        )
        grads = [xp.reshape(dw, tuple(self.weight.shape))]
        if self.bias is not None:
            grads.append(xp.sum(rgm, axis=(0, 2)))
        return r_dh, grads


def _taps_by_residue(
    tap: Any,
    xp: Any,
    like: Array,
    shape: tuple[int, ...],
    around: tuple[tuple[slice, ...], tuple[slice, ...]],
    ranges: tuple[list[tuple[int, int]], list[tuple[int, int]]],
    p: int,
    s: int,
) -> Array:
    """The im2col adjoint by residue classes (``s`` divides ``H`` and ``W``; writeable arrays).

    Image row ``r = s·R + ρ`` is read only by the taps ``i`` with ``i − p ≡ ρ (mod s)``, at
    output positions ``t = R − (i − p − ρ)/s``. In the ``(*lead, H/s, s, W/s, s, *trail)`` view
    of the image every tap's block is therefore one *contiguous* box of its class: a tap whose
    box covers its class is assigned, the others are added — at stride 2 a 3 × 3 kernel makes
    4 assignments and 5 additions, none of them into a zeroed image. A class no tap covers in
    full is zeroed first.
    """
    keep, tail = around
    lead, trail = shape[: len(keep)], shape[len(shape) - len(tail) :]
    hh, ww = shape[len(keep)], shape[len(keep) + 1]
    hs, ws = hh // s, ww // s
    out = xp.empty((*lead, hs, s, ws, s, *trail), dtype=like.dtype, device=_xp.device(like))

    def boxes(valid: list[tuple[int, int]]) -> dict[int, list[tuple[int, int, int, int]]]:
        """Per residue: ``(tap, first output, first class index, count)`` of each tap."""
        found: dict[int, list[tuple[int, int, int, int]]] = {rho: [] for rho in range(s)}
        for i, (t0, t1) in enumerate(valid):
            if t0 < t1:
                rho = (i - p) % s
                found[rho].append((i, t0, (i - p - rho) // s + t0, t1 - t0))
        return found

    row_boxes, col_boxes = boxes(ranges[0]), boxes(ranges[1])
    for rho in range(s):
        for sigma in range(s):
            region = (*keep, slice(None), rho, slice(None), sigma, *tail)
            taps = [(r, c) for r in row_boxes[rho] for c in col_boxes[sigma]]
            whole = [k for k, (r, c) in enumerate(taps) if r[2:] == (0, hs) and c[2:] == (0, ws)]
            if whole:
                taps.insert(0, taps.pop(whole[0]))
            else:
                out[region] = 0
            for k, ((i, t0, r0, nr), (j, u0, c0, nc)) in enumerate(taps):
                block = tap(i, j)[(*keep, slice(t0, t0 + nr), slice(u0, u0 + nc), *tail)]
                place = (*keep, slice(r0, r0 + nr), rho, slice(c0, c0 + nc), sigma, *tail)
                if k == 0 and whole:
                    out[place] = block
                else:
                    out[place] += block
    return xp.reshape(out, shape)


def _valid(i: int, p: int, s: int, n_out: int, n_in: int) -> tuple[int, int]:
    """The output positions ``t ∈ [t0, t1)`` at which tap ``i`` reads inside the image.

    That is ``0 ≤ i − p + s·t < n_in``; the other positions read the zero padding.
    """
    t0 = max(0, -((i - p) // s)) if i < p else 0
    t1 = min(n_out, (n_in - 1 - i + p) // s + 1)
    return t0, t1
