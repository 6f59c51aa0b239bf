"""The Global Matrix Stability Index over a whole dataset, one batch in memory (:ref:`theory-data`).

Every component of :func:`specinterp.gmsi` is defined for the ``N`` samples of a dataset as for
one batch, and each can be had batch by batch:

- ``s_J = max_i σ₁(J_i)`` and ``s_θ = max_i σ₁(G_i)`` are maxima over samples (``σ₁(G_i)² =
  λ_max(G_i G_iᵀ)``, a ``C × C`` block from ``C`` products per sample); ``t_J`` and the mean
  Jacobian entropy are means over samples;
- ``s_K = (λ_max(K)/N)^½`` with ``K = G Gᵀ`` the NTK of all samples: ``λ_max(K)/N = λ_max(M)``
  for the ``p × p`` Gram ``M = (1/N) Σ_i G_iᵀ G_i`` (T5), which is the squared-error GGN of the
  data; ``K``'s nonzero eigenvalues are ``N`` times ``M``'s, so its entropy is ``M``'s, and
  ``tr K = Σ_i tr(G_i G_iᵀ)``;
- ``s_H`` from the dataset Hessian (:class:`~specinterp.data_operators.DataHessianOperator`)
  and ``β_ℓ``, the largest over batches of their ``max_i λ_max(Λ_i)``.

``κ(K)``: ``K`` is ``N·C × N·C`` with rank at most ``p``, so it is singular (``+∞``) when
``N·C > p``; otherwise ``λ_min(K) = N ·`` the ``N·C``-th largest eigenvalue of ``M``, computed
when ``M`` is formed densely and reported as NaN (not computed) in the matrix-free route.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from . import _xp
from .batches import Batches, as_batches
from .data_operators import DataGGNOperator, DataHessianOperator
from .entropy_estimates import entropy_from_values
from .errors import MemoryBudgetError
from .losses import get_loss
from .model import as_model
from .model_operators import natural_outputs
from .operators import hessian, param_jacobian
from .stability_index import GMSIResult, _aggregate
from .stability_index_routes import (
    HessianPart,
    block_summary,
    curvature_max,
    eigsh_with_bar,
    hessian_condition,
    hessian_from_values,
    jacobian_part,
    ntk_singular_level,
    slq_entropy_with,
)

Array = Any

__all__ = ["gmsi_over_data"]


def _eigenvalues(a: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetric part of a host matrix, ascending."""
    return np.linalg.eigvalsh(0.5 * (a + a.T))


def _dense(op: Any) -> np.ndarray:
    """Eigenvalues of ``op`` formed from ``p`` products (each a pass through the dataset)."""
    p = op.shape[0]
    return _eigenvalues(
        np.asarray(_xp.to_numpy(op @ op.xp.eye(p, dtype=op.dtype, device=op.device)), float)
    )


def _summed(batches: Batches, n: int, term: Callable[[Any, Any], Any], fallback: Any) -> np.ndarray:
    """Eigenvalues of ``(1/N) Σ_b term(x_b, y_b)``, the dense batch terms summed in float64.

    Where one batch's term exceeds the memory budget, ``fallback`` (the dataset operator of
    the same matrix) is formed from ``p`` products instead.
    """
    total: np.ndarray | None = None
    try:
        for x, y in batches:
            a = np.asarray(_xp.to_numpy(term(x, y)), dtype=float)
            total = a if total is None else total + a
    except MemoryBudgetError:
        return _dense(fallback)
    assert total is not None
    return _eigenvalues(total / n)


def _gram_term(model: Any) -> Callable[[Any, Any], Any]:
    """``G_bᵀ G_b`` of a batch, from its dense parameter Jacobian."""
    p = model.num_params

    def term(x: Any, _: Any) -> Any:
        g = np.asarray(_xp.to_numpy(param_jacobian(model, x)), dtype=float).reshape(-1, p)
        return g.T @ g

    return term


def _hessian_term(model: Any, loss: Any) -> Callable[[Any, Any], Any]:
    """``N_b H_b`` of a batch (``H_b`` of its mean loss) by the model's fastest dense route."""
    return lambda x, y: hessian(model, x, y, loss) * int(x.shape[0])


def gmsi_over_data(
    model: Any,
    data: Any,
    loss: Any,
    *,
    method: Literal["auto", "dense", "matrix-free"] = "auto",
    aggregation: Literal["max", "log-mean"] = "max",
    dense_limit: int = 3000,
    tol: float | None = None,
    seed: int = 0,
    num_probes: int = 3,
    num_steps: int = 25,
    progress: bool = True,
) -> GMSIResult:
    """:func:`specinterp.gmsi` of the loss over every sample of ``data`` (module docstring).

    ``"dense"`` forms the ``p × p`` Gram and Hessian as sums of each batch's dense ``G_bᵀ G_b``
    and ``N_b H_b`` (or, where one batch's does not fit, from ``p`` products each, one pass over
    the data per block of vectors); ``"matrix-free"`` uses Lanczos and SLQ on them; ``"auto"``
    is dense when ``p ≤ dense_limit``.
    """
    model = as_model(model)
    batches = as_batches(data)
    lf = get_loss(loss)
    p = model.num_params
    if method == "auto":
        method = "dense" if p <= dense_limit else "matrix-free"
    if method not in ("dense", "matrix-free"):
        raise ValueError(f"method must be 'auto', 'dense' or 'matrix-free'; got {method!r}")
    opts = dict(tol=tol, seed=seed, num_probes=num_probes, num_steps=num_steps, progress=progress)
    s_j = s_theta2 = beta = tr_k = tr_err = 0.0
    t_sum = h_sum = h_err = 0.0
    exact_trace = True
    n = c = 0
    for x, y in batches:  # the per-sample components, one batch at a time
        model.check_input(x)
        nb = int(x.shape[0])
        jac = jacobian_part(model, x, None, opts)
        s_j, t_sum, h_sum = max(s_j, jac.s_j), t_sum + nb * jac.t_j, h_sum + nb * jac.entropy
        h_err += nb * jac.entropy_error
        z = natural_outputs(model, x)
        beta = max(beta, curvature_max(lf, z, y, seed=seed))
        c = math.prod(z.shape[1:])
        top, trace = block_summary(model, x, nb, c, opts)  # no trace: estimated below
        s_theta2 = max(s_theta2, top)
        if trace is None:
            exact_trace = False
        else:
            tr_k += trace
        n += nb
    xp, dev = model.xp, getattr(model, "device", None)

    def zero_targets() -> Any:  # ½‖f − y‖² has Λ = I whatever y: the GGN is the Gram
        for x, _ in batches:
            shape = (int(x.shape[0]), *model.output_shape(x))
            yield x, xp.zeros(shape, dtype=model.dtype, device=dev)

    gram = DataGGNOperator(model, Batches(zero_targets, "the batches"), "mse")
    hop = DataHessianOperator(model, batches, loss)
    k_min, k_entropy_error = math.nan, 0.0
    if method == "dense":
        lam_m = _summed(batches, n, _gram_term(model), gram)
        m_max, entropy_k = float(lam_m[-1]), entropy_from_values(np.clip(lam_m, 0.0, None))
        tr_k = n * float(np.sum(lam_m))  # tr K = N tr M: exact from the dense Gram
        if n * c <= p:
            k_min = n * float(lam_m[::-1][n * c - 1])
        hess = hessian_from_values(_summed(batches, n, _hessian_term(model, loss), hop), p)
    else:
        m_max = float(_xp.to_numpy(eigsh_with_bar(gram, 1, "LA", opts, "NTK Gram λ_max").values)[0])
        k_entropy = slq_entropy_with(gram, opts, tr_k / n if exact_trace else None)
        entropy_k, k_entropy_error = k_entropy.value, k_entropy.error
        tr_k, tr_err = n * k_entropy.trace_abs, n * k_entropy.trace_stderr
        top = eigsh_with_bar(hop, min(6, p), "LA", opts, "Hessian top eigenvalues (Lanczos)")
        lam_h = np.asarray(_xp.to_numpy(top.values), dtype=float)
        h_entropy = slq_entropy_with(hop, opts, None)
        hess = HessianPart(float(lam_h[0]), lam_h[lam_h > 0], h_entropy.value, top, h_entropy.error)
    k_max = n * m_max
    s_k = math.sqrt(max(m_max, 0.0))
    s_h = math.sqrt(max(hess.h_max, 0.0) / beta) if beta > 0 else 0.0
    components = {"forward": s_j, "parameter": math.sqrt(s_theta2), "ntk": s_k, "curvature": s_h}
    if n * c > p:
        kappa_k = math.inf  # rank(K) ≤ p < N·C
    elif math.isnan(k_min):
        kappa_k = math.nan
    else:
        singular = k_min <= ntk_singular_level(n, c, k_max, _xp.eps(model.xp, model.dtype))
        kappa_k = math.inf if singular else k_max / k_min
    h_j = h_sum / n
    kappa_h, kappa_scope = hessian_condition(hess)
    return GMSIResult(
        value=_aggregate(components, aggregation),
        components=components,
        binding=max(components, key=components.get),
        typical={"forward": t_sum / n, "ntk": math.sqrt(max(tr_k, 0.0) / (n * n * c))},
        entropies={"jacobian": h_j, "ntk": entropy_k, "hessian": hess.entropy},
        effective_ranks={
            "jacobian": math.exp(h_j),
            "ntk": math.exp(entropy_k),
            "hessian": math.exp(hess.entropy),
        },
        ntk_condition_number=kappa_k,
        hessian_condition_number=kappa_h,
        residual_curvature_dominates=bool(s_h > s_k * (1 + 1e-9)),
        beta=beta,
        method=method,
        aggregation=aggregation,
        details={
            "samples": n,
            "batches": len(batches.sizes or []),
            "hessian_condition_over": kappa_scope,
            "ntk_trace_error": tr_err,  # 0: Σ_i ‖G_i‖_F² exact, else the SLQ probes' estimate
            "entropy_error": {
                "ntk": k_entropy_error,
                "hessian": hess.entropy_error,
                "jacobian": h_err / n,
            },
        },
    )
