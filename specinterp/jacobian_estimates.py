"""Per-sample input-Jacobian statistics without the Jacobians (for the GMSI of large models).

The GMSI needs ``s_J = max_i σ_1(J_i)``, ``t_J = mean_i ‖J_i‖_F/√d`` and the mean spectral
entropy of the ``J_i`` (:ref:`theory-gmsi`). Where the ``(N, C, d)`` Jacobians do not fit — a
language model has ``C = T·V`` outputs per sample, 1.6 M for GPT-2's vocabulary at 32 tokens —
they come from products with the block-diagonal ``JᵀJ = diag(J_1ᵀJ_1, …, J_NᵀJ_N)``, one
batched JVP and one batched VJP each:

* ``s_J² = λ_max(JᵀJ)``: the largest eigenvalue of a block-diagonal matrix is the largest over
  its blocks, so one Lanczos run (:func:`~specinterp.linalg.eigsh`) gives the maximum over
  samples.
* ``‖J_i‖_F² = tr(J_iᵀJ_i)`` and ``H(J_i)`` — the entropy of ``p_k = σ_k²/Σσ²``, i.e. of the
  eigenvalues of ``J_iᵀJ_i`` normalised by their sum — by stochastic Lanczos quadrature run on
  every sample at once: :func:`batched_lanczos` advances ``N`` independent Lanczos recurrences in
  lockstep (each sample's own scalars, basis and reorthogonalisation), so a step costs one
  batched product pair for all samples. Each sample's Gauss rules give Hutchinson's
  ``zᵀ J_iᵀJ_i z`` exactly and the entropy with its stated error (spread of the probes and the
  change from the half-length rule, as :mod:`specinterp.entropy_estimates`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _xp
from ._progress import counted
from .entropy_estimates import estimate_from_rules
from .linalg import LinearOperator, eigsh
from .linalg.density import gauss_rule
from .matrix_free import input_jacobian_operator

Array = Any

__all__ = ["JacobianEstimate", "batched_lanczos", "jacobian_estimate"]


@dataclass(frozen=True)
class JacobianEstimate:
    """``s_J``, ``t_J``, the mean entropy and its stated error, and the products used."""

    s_j: float
    t_j: float
    entropy: float
    entropy_error: float
    num_products: int


def batched_lanczos(
    apply: Any, start: Array, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``N`` Lanczos recurrences in lockstep on a block-diagonal operator, one per row.

    ``apply`` maps ``(N, d)`` to ``(N, d)`` row by row (``A_i`` on row ``i``); ``start`` is
    ``(N, d)``. Every row is fully reorthogonalised against its own basis (classical
    Gram–Schmidt twice). Returns host ``alpha (N, s)``, ``beta (N, s)`` (``beta[:, j]`` follows
    step ``j``) and ``used (N,)``: a row whose Krylov space became invariant stops there (its
    later entries are unused), as a single-vector run would.
    """
    xp = _xp.namespace(start)
    n, d = (int(v) for v in start.shape)
    steps = min(int(steps), d)
    eps = _xp.eps(xp, start.dtype)
    q = start / xp.linalg.vector_norm(start, axis=1, keepdims=True)
    basis: list[Array] = []
    alpha, beta = np.zeros((n, steps)), np.zeros((n, steps))
    used = np.full(n, steps)
    live = np.ones(n, dtype=bool)
    for j in range(steps):
        basis.append(q)
        w = apply(q)
        a = xp.sum(q * w, axis=1)
        alpha[:, j] = np.where(live, _xp.to_numpy(a), 0.0)
        for _ in range(2):  # twice is enough
            for v in basis:
                w = w - xp.sum(v * w, axis=1, keepdims=True) * v
        b = _xp.to_numpy(xp.linalg.vector_norm(w, axis=1)).astype(np.float64)
        scale = np.maximum(np.abs(alpha[:, : j + 1]).max(axis=1), np.finfo(float).tiny)
        ended = live & (b <= 1e3 * eps * scale)
        used[ended] = j + 1
        live &= ~ended
        beta[:, j] = np.where(live, b, 0.0)
        if not live.any() or j == steps - 1:
            break
        keep = _xp.from_host(live.astype(np.float64), w)[:, None]
        safe = _xp.from_host(np.where(live, b, 1.0), w)[:, None]
        q = keep * (w / safe)  # a finished row stays zero: its products no longer matter
    return alpha, beta, used


def jacobian_estimate(
    model: Any,
    x: Array,
    *,
    tol: float | None,
    seed: int,
    num_probes: int,
    num_steps: int,
    progress: bool,
) -> JacobianEstimate:
    """``s_J`` by Lanczos on ``JᵀJ``, ``t_J`` and the mean entropy by batched SLQ (module doc).

    ``x`` is in the model's input space (token embeddings at token ids). Costs the Lanczos
    run's products plus ``num_probes · min(num_steps, d)``, each one JVP and one VJP of the
    whole batch.
    """
    jop = input_jacobian_operator(model, x)
    n, d = jop.num_samples, jop.input_size
    xp = jop.xp
    gram = LinearOperator(
        (n * d, n * d),
        lambda v: jop.rmatvec(jop.matvec(v)),
        dtype=jop.dtype,
        xp=xp,
        device=jop.device,
        symmetric=True,
    )
    with counted(gram, "gmsi: input Jacobians (matrix-free)", enabled=progress) as wrapped:
        top = eigsh(wrapped, 1, which="LA", tol=tol, seed=seed)

        def apply(rows: Array) -> Array:
            return xp.reshape(wrapped.matvec(xp.reshape(rows, (n * d,))), (n, d))

        rng = _xp.as_generator(seed, xp, jop.device)
        full: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(n)]
        half: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(n)]
        products = int(top.num_matvecs)
        for _ in range(max(int(num_probes), 1)):
            z = rng.rademacher((n, d), dtype=jop.dtype)
            alpha, beta, used = batched_lanczos(apply, z, num_steps)
            products += int(used.max())
            for i in range(n):
                s = int(used[i])
                full[i].append(gauss_rule(alpha[i, :s], beta[i, : s - 1]))
                h = (s + 1) // 2
                half[i].append(gauss_rule(alpha[i, :h], beta[i, : h - 1]))
    per_sample = [estimate_from_rules(d, full[i], half[i], products) for i in range(n)]
    traces = [e.trace_abs for e in per_sample]
    entropies = [e.value for e in per_sample]
    # one probe has no spread to state
    stderrs = np.asarray([e.stderr if e.num_probes > 1 else 0.0 for e in per_sample])
    biases = np.asarray([e.quadrature for e in per_sample])
    ok = np.isfinite(entropies)  # a zero Jacobian has no entropy (the dense route's NaN)
    count = max(int(ok.sum()), 1)
    error = math.hypot(
        math.sqrt(float(np.sum(np.square(stderrs[ok])))) / count,
        float(np.mean(biases[ok])) if ok.any() else 0.0,
    )
    return JacobianEstimate(
        s_j=math.sqrt(max(float(_xp.to_numpy(top.values)[0]), 0.0)),
        t_j=float(np.mean(np.sqrt(np.maximum(traces, 0.0) / d))),
        entropy=float(np.mean(np.asarray(entropies)[ok])) if ok.any() else math.nan,
        entropy_error=error,
        num_products=products,
    )
