"""Model-level operators (:ref:`theory-notation`), dense and matrix-free, from the Model protocol.

Dense builders (``input_jacobian``, ``param_jacobian``, ``ntk``, ``hessian``, ``ggn``) are
for small problems: they check a memory budget first and name the matrix-free alternative when
it would be exceeded. The ``*_operator`` functions, defined in :mod:`specinterp.matrix_free` and
importable from here too, return the named operators of :mod:`specinterp.model_operators`
(``LinearOperator`` subclasses) for :mod:`specinterp.linalg` (Lanczos, SLQ, trace estimators).

Every dense builder has a *derived* path that uses only the protocol's products — the
reference — and uses an adapter's native path (``vmap``/``jacrev``, analytic product forms)
when the adapter offers one and ``native=True``. The tests compare the two.
"""

from __future__ import annotations

import math
import os
from typing import Any

from . import _xp
from ._guards import finite_result
from ._progress import counted_range
from .capabilities import (
    NativeHessian,
    NativeInputJacobian,
    NativeNTK,
    NativeParamJacobian,
    offers,
    use,
)
from .errors import MemoryBudgetError
from .gram import gram
from .losses import get_loss
from .matrix_free import (
    ggn_operator,
    hessian_operator,
    input_jacobian_operator,
    ntk_operator,
    param_jacobian_operator,
)
from .model import Model, as_model, input_space
from .model_operators import HessianOperator, natural_outputs
from .structured_ntk import product_form_for_ntk, structured_ntk

Array = Any

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ggn",
    "ggn_operator",
    "hessian",
    "hessian_operator",
    "input_jacobian",
    "input_jacobian_operator",
    "ntk",
    "ntk_operator",
    "param_jacobian",
    "param_jacobian_operator",
]

#: Default budget for one dense matrix: 2 GiB, or ``SPECINTERP_MAX_DENSE_BYTES``.
DEFAULT_MAX_BYTES = int(os.environ.get("SPECINTERP_MAX_DENSE_BYTES", 2**31))


def _check_budget(
    model: Model, shape: tuple[int, ...], what: str, alternative: str, max_bytes: int | None
) -> None:
    limit = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    nbytes = math.prod(shape) * (model.xp.finfo(model.dtype).bits // 8)
    if nbytes > limit:
        raise MemoryBudgetError(
            f"the dense {what} of shape {shape} needs {nbytes / 2**30:.3g} GiB, over the "
            f"budget of {limit / 2**30:.3g} GiB; use {alternative} with specinterp.linalg "
            "(matrix-free), or pass a larger max_bytes="
        )


def _prepare(model: Any, x: Array) -> tuple[Model, Any]:
    model = as_model(model)
    model.check_input(x)
    return model, model.xp


def output_unit(like: Array, cls: int, rows: int | None = None) -> Array:
    """The cotangent ``e_cls`` for every sample: ``(rows, C)`` shaped like the outputs ``like``.

    Used to read one output row of a Jacobian per backward pass (here and in the adapters).
    """
    xp = _xp.namespace(like)
    n, c = (int(like.shape[0]) if rows is None else rows), int(like.shape[1])
    e = xp.zeros((n, c), dtype=like.dtype, device=_xp.device(like))
    return e + xp.astype(xp.arange(c, device=_xp.device(like)) == cls, like.dtype)[None, :]


def _num_outputs(model: Any, x: Array) -> int:
    """``C``, from the model's per-sample output shape.

    The budget check must not cost a forward pass over the batch; ``output_shape`` probes a
    sample or two (an embedded view, bound to its ids, runs on all of them).
    """
    return math.prod(model.output_shape(x))


# ------------------------------------------------------------------ dense builders
@finite_result("input Jacobian")
def input_jacobian(
    model: Any, x: Array, *, native: bool = True, max_bytes: int | None = None
) -> Array:
    """Per-sample input Jacobians ``J_i = ∂f/∂x(x_i)``, shape ``(N, C, d)`` (inputs flattened).

    At token ids the Jacobian is taken with respect to the token embeddings ``(N, T, d)``
    (:func:`specinterp.model.input_space`). The derived path costs ``min(C, d)`` batched
    products: ``C`` VJPs (rows), or ``d`` JVPs (columns) where the inputs are fewer than the
    outputs — a language model's next-token logits (``C = V``) at ``d = T·n_embd``.
    """
    model, x = input_space(model, x)
    n, d = int(x.shape[0]), math.prod(x.shape[1:])
    c = _num_outputs(model, x)
    _check_budget(model, (n, c, d), "input Jacobian", "input_jacobian_operator", max_bytes)
    if native:
        try:
            return use(model, NativeInputJacobian, x)
        except NotImplementedError:
            pass
    return _jacobian_by_products(model, x, n, c, d)


#: entries of the stacked inputs and outputs of one chunk of products (derived Jacobians):
#: 64 MiB in float32. The 2048 JVP columns of a real-vocabulary GPT-2's next-token logits
#: (4 × 32 tokens) took 22 s so, 32 s at 2**22 (more, smaller calls) and 30 s at 2**26
CHUNK_ENTRIES = 2**24


def _jacobian_by_products(model: Model, x: Array, n: int, c: int, d: int) -> Array:
    """``(N, C, d)`` from ``min(C, d)`` products, ``k`` of them per call.

    Columns by JVPs where ``d < C``, else rows by VJPs. ``k`` unit directions go in one call on
    the batch repeated ``k`` times (sample ``i``'s copies adjacent: rows ``i·k … i·k + k − 1``,
    the row order that embedded views repeat their token ids in), which runs one larger forward
    and backward pass instead of ``k`` small ones — 8× faster per product on the next-token
    logits of a small GPT-2.
    """
    xp, dev = model.xp, _xp.device(x)
    columns = d < c
    count = d if columns else c
    k = max(1, min(count, CHUNK_ENTRIES // max(1, n * (c + d))))
    rows = xp.take(x, xp.repeat(xp.arange(n, device=dev), k), axis=0) if k > 1 else x
    units = xp.arange(count, device=dev)
    parts = []
    what = "forward" if columns else "backward"
    for k0 in counted_range(f"input Jacobian: {count} {what} products", count, k):
        m = min(k, count - k0)
        sel = xp.arange(k, device=dev)[:, None] + k0 == units[None, :]  # (k, count): unit k0 + j
        unit = xp.reshape(
            xp.broadcast_to(xp.astype(sel, x.dtype)[None], (n, k, count)), (n * k, count)
        )
        if columns:
            out = model.jvp_input(rows, xp.reshape(unit, tuple(rows.shape)))  # (N·k, C)
            parts.append(xp.permute_dims(xp.reshape(out, (n, k, c)), (0, 2, 1))[:, :, :m])
        else:
            out = xp.reshape(model.vjp_input(rows, unit), (n, k, d))  # rows a of every J_i
            parts.append(out[:, :m, :])
    return xp.concat(parts, axis=2 if columns else 1)


@finite_result("parameter Jacobian")
def param_jacobian(
    model: Any, x: Array, *, native: bool = True, max_bytes: int | None = None
) -> Array:
    """Per-sample parameter Jacobians ``G_i = ∂f/∂θ(x_i)``, shape ``(N, C, p)``.

    The derived path costs ``N · C`` single-sample VJPs.
    """
    model, _ = _prepare(model, x)
    shape = (int(x.shape[0]), _num_outputs(model, x), model.num_params)
    _check_budget(model, shape, "parameter Jacobian", "param_jacobian_operator", max_bytes)
    return _param_jacobian(model, x, native)


def _param_jacobian(model: Model, x: Array, native: bool) -> Array:
    xp = model.xp
    if native:
        try:
            return use(model, NativeParamJacobian, x)
        except NotImplementedError:
            pass
    n = int(x.shape[0])
    z = model.apply(x)
    c = int(z.shape[1])
    per_sample = []
    for i in range(n):
        xi = x[i : i + 1, ...]
        per_sample.append(
            xp.stack([model.vjp_params(xi, output_unit(z, a, rows=1)) for a in range(c)], axis=0)
        )
    return xp.stack(per_sample, axis=0)


@finite_result("NTK")
def ntk(
    model: Any,
    x1: Array,
    x2: Array | None = None,
    *,
    trace: bool = False,
    native: bool = True,
    max_bytes: int | None = None,
    return_path: bool = False,
) -> Array | tuple[Array, str]:
    """Empirical NTK ``K = G₁ G₂ᵀ``: ``(N₁C, N₂C)`` sample-major, or ``(N₁, N₂)`` if ``trace``.

    ``K[(i,a),(j,b)] = ⟨∂f_a(x_i)/∂θ, ∂f_b(x_j)/∂θ⟩``; the trace NTK sums ``a = b``
    (:ref:`theory-notation`).

    Parameters
    ----------
    model, x1, x2
        The model and one or two batches (``x2=None``: the self-NTK of ``x1``).
    trace : bool
        The trace NTK ``(N₁, N₂)``.
    native : bool
        Take the adapter's fastest route (below); ``False`` forces the Jacobian contraction
        from the protocol's VJPs (the reference the tests compare against).
    max_bytes : int, optional
        Memory budget of each dense array (default :data:`DEFAULT_MAX_BYTES`).
    return_path : bool
        Also return which route computed ``K``: ``"structured"`` (the layer-wise Gram identity
        of an MLP, :ref:`theory-structured-ntk`: activation Grams times back-propagated-signal
        Grams, no ``G``), ``"native NTK program"`` (JAX: ``vmap(jacrev)`` and the Gram compiled
        as one program), ``"native Jacobian"`` (the adapter's ``vmap(jacrev)`` ``G``, then
        ``G Gᵀ``) or ``"Jacobian products"`` (``G`` row by row from VJPs).

    Raises
    ------
    MemoryBudgetError
        When ``K`` (or, off the structured route, ``G``) does not fit ``max_bytes``; the
        message names :func:`ntk_operator`.

    """
    model, xp = _prepare(model, x1)
    if x2 is not None:
        model.check_input(x2, "x2")
    c, p = int(model.apply(x1).shape[1]), model.num_params
    n1 = int(x1.shape[0])
    n2 = n1 if x2 is None else int(x2.shape[0])
    out = (n1, n2) if trace else (n1 * c, n2 * c)
    _check_budget(model, out, "trace NTK" if trace else "NTK", "ntk_operator", max_bytes)
    fac1 = product_form_for_ntk(model, x1) if native else None
    fac2 = None if x2 is None or fac1 is None else product_form_for_ntk(model, x2)
    if fac1 is not None and (x2 is None or fac2 is not None):
        k = structured_ntk(fac1, fac2, trace=trace)
        return (k, "structured") if return_path else k
    for n in (n1, n2):
        _check_budget(model, (n, c, p), "parameter Jacobian", "ntk_operator", max_bytes)
    if native and x2 is None and not trace and offers(model, NativeNTK):
        k = use(model, NativeNTK, x1)
        return (k, "native NTK program") if return_path else k
    native_g = native and offers(model, NativeParamJacobian)
    path = "native Jacobian" if native_g else "Jacobian products"
    g1 = _param_jacobian(model, x1, native)
    if x2 is None:
        if trace:
            k = sum(gram(g1[:, a, :]) for a in range(c))
        else:
            k = gram(xp.reshape(g1, (n1 * c, p)))
    else:
        g2 = _param_jacobian(model, x2, native)
        if trace:
            k = sum(g1[:, a, :] @ g2[:, a, :].T for a in range(c))
        else:
            k = xp.reshape(g1, (n1 * c, p)) @ xp.reshape(g2, (n2 * c, p)).T
    return (k, path) if return_path else k


@finite_result("Hessian")
def hessian(
    model: Any,
    x: Array,
    y: Array,
    loss: Any,
    *,
    native: bool = True,
    max_bytes: int | None = None,
) -> Array:
    """Loss Hessian ``H = ∇²_θ (1/N) Σ ℓ(f(x_i), y_i)``, ``(p, p)``.

    By the adapter's dense route where it has one and ``native=True`` (JAX: one compiled
    ``jax.hessian`` program; torch: ``vmap`` over the columns' forward-over-reverse products);
    otherwise from ``p`` Hessian-vector products.
    """
    model, xp = _prepare(model, x)
    lf = get_loss(loss)
    p = model.num_params
    _check_budget(model, (p, p), "Hessian", "hessian_operator", max_bytes)
    if native and offers(model, NativeHessian):
        # the targets are checked against the outputs' shape alone (no forward pass: under
        # JAX one would be a compilation of its own)
        shape = (int(x.shape[0]), *model.output_shape(x))
        lf.check(xp.zeros(shape, dtype=model.dtype, device=_xp.device(x)), y)
        try:
            return use(model, NativeHessian, x, y, loss)  # symmetric by the capability's contract
        except NotImplementedError:
            pass  # the model cannot take its route here: p products
    eye = xp.eye(p, dtype=model.dtype, device=_xp.device(x))
    hvp = HessianOperator(model, x, y, loss).matvec
    cols = [hvp(eye[:, j]) for j in range(p)]
    # stacked 64 at a time: one stack of p arrays is one XLA program with p operands under
    # JAX, whose compilation took 34 s at p = 2410
    h = xp.concat([xp.stack(cols[j : j + 64], axis=1) for j in range(0, p, 64)], axis=1)
    return 0.5 * (h + h.T)


@finite_result("GGN")
def ggn(
    model: Any, x: Array, y: Array, loss: Any, *, native: bool = True, max_bytes: int | None = None
) -> Array:
    """Generalised Gauss–Newton ``(1/N) Σ_i G_iᵀ Λ_i G_i``, ``(p, p)`` (:ref:`theory-objects`).

    ``Λ_i`` multiplies ``G_i`` column block by column block through the loss's matrix-free
    product, so it is never formed.
    """
    model, xp = _prepare(model, x)
    lf = get_loss(loss)
    p = model.num_params
    z = natural_outputs(model, x)
    n, c = int(z.shape[0]), math.prod(z.shape[1:])
    _check_budget(model, (p, p), "GGN", "ggn_operator", max_bytes)
    _check_budget(model, (n, c, p), "parameter Jacobian", "ggn_operator", max_bytes)
    lf.check(z, y)
    g = _param_jacobian(model, x, native)  # (N, C, p)
    # Λ_i G_i: columns of G_i are output tangents; move p next to N and apply Λ to all at once
    gt = xp.reshape(xp.permute_dims(g, (0, 2, 1)), (n, p, *z.shape[1:]))
    zz = xp.reshape(xp.broadcast_to(z[:, None, ...], gt.shape), (n * p, *z.shape[1:]))
    yy = xp.reshape(xp.broadcast_to(y[:, None, ...], (n, p, *y.shape[1:])), (n * p, *y.shape[1:]))
    lg = lf.apply_hessian(zz, yy, xp.reshape(gt, (n * p, *z.shape[1:])))
    # (a batch-dependent per-sample weight — cross-entropy's N/M — is the same for the
    # batch of N·p copies: N·p / (M·p))
    lg = xp.permute_dims(xp.reshape(lg, (n, p, c)), (0, 2, 1))
    return xp.reshape(g, (n * c, p)).T @ xp.reshape(lg, (n * c, p)) / n
