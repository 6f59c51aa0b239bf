"""Assertion helpers: check the framework's bounds on *your* model and inputs.

:func:`assert_bounds_hold` evaluates every theorem of :ref:`theory-theorems` that applies to a
model at a batch — T1 on each input Jacobian, T3 and T4 when the model has a product form, T5
and T6 on the parameter Jacobian and NTK, T7 on the GGN — and raises ``AssertionError`` naming
the first violated one. Combine it with Hypothesis strategies to property-test an architecture.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .. import _xp, bounds
from ..capabilities import ProductForm, use
from ..losses import output_hessian
from ..model import as_model, input_space
from ..model_operators import natural_outputs
from ..operators import ggn, hessian, input_jacobian, ntk, param_jacobian

__all__ = ["assert_bounds_hold"]


def _np(a: Any) -> np.ndarray:
    return np.asarray(_xp.to_numpy(a), dtype=np.float64)


def assert_bounds_hold(
    model: Any, x: Any, *, rtol: float = 1e-7, atol: float = 1e-10, seed: int = 0
) -> dict[str, bool]:
    """Check T1, T3 and T4 (where applicable), T5, T6 and T7 on ``model`` at the batch ``x``.

    Returns the map of checked theorem labels to ``True``; raises ``AssertionError`` with the
    theorem, the two sides and the sample when one fails. Use float64 models and inputs: the
    tolerances are relative (``rtol``) plus absolute (``atol``). For a model on token ids the
    input-side theorems (T1, T3, T4) are checked with respect to the token embeddings, the
    others at the ids; T7's labels are the predicted class along the last output axis.
    """
    model = as_model(model)
    model_e, e = input_space(model, x)  # the embedded view at token ids, else (model, x)
    checked: dict[str, bool] = {}

    def need(ok: bool, label: str, detail: str) -> None:
        if not ok:
            raise AssertionError(f"{label} violated: {detail}")
        checked[label] = True

    jac = input_jacobian(model_e, e)
    t1 = bounds.typical_sensitivity(jac, eps=1.0)
    need(t1.holds(rtol=rtol, atol=atol), "T1", f"chain {[(n, _np(v)) for n, v in t1.terms]}")
    try:
        fac = use(model_e, ProductForm, e)
    except NotImplementedError:
        fac = None
    if fac is not None:
        t3 = bounds.layer_product_bound(jac, fac.weights, fac.diagonals, fac.lipschitz)
        need(t3.holds(rtol=rtol, atol=atol), "T3", f"{[(n, _np(v)) for n, v in t3.terms]}")
        if fac.piecewise_linear:
            from ..radius import certified_radius

            rho = _np(certified_radius(model_e, e))
            rng = np.random.default_rng(seed)
            jac_np = _np(jac)
            x_np = _np(e)
            for i in np.flatnonzero(np.isfinite(rho) & (rho > 0)):
                d = rng.standard_normal(x_np.shape[1:])
                d *= 0.99 * rho[i] / np.linalg.norm(d)
                moved = _xp.from_host((x_np[i] + d)[None], e)
                inside = _np(input_jacobian(model_e, moved))[0]
                need(
                    np.allclose(inside, jac_np[i], rtol=1e-9, atol=atol),
                    "T4",
                    f"J changed inside the certified radius {rho[i]:.3g} at sample {i}",
                )
    g = _np(param_jacobian(model, x))
    n, c, p = g.shape
    k = _np(ntk(model, x))
    lam = np.linalg.eigvalsh(k)
    big = g.reshape(n * c, p)
    s2 = np.sort(np.linalg.svd(big, compute_uv=False) ** 2)[::-1]
    r = min(lam.size, s2.size)
    top = max(lam[-1], atol)
    need(
        np.allclose(lam[::-1][:r], s2[:r], rtol=rtol, atol=rtol * top)
        and np.isclose(np.trace(k), np.sum(big**2), rtol=rtol, atol=atol),
        "T5",
        "NTK eigenvalues differ from the squared singular values of G",
    )
    s1 = np.array([np.linalg.svd(g[i], compute_uv=False)[0] ** 2 for i in range(n)])
    chain = [s1.max(), lam[-1], s1.sum(), n * s1.max()]
    need(
        all(a <= b * (1 + rtol) + atol for a, b in itertools.pairwise(chain)),
        "T6",
        f"max σ₁(G_i)² ≤ λ_max(K) ≤ Σσ₁(G_i)² ≤ N max σ₁(G_i)²: {chain}",
    )
    z = natural_outputs(model, x)  # (N, *out): the class axis is the last
    labels = _xp.from_host(np.argmax(_np(z), axis=-1), z)
    labels = model.xp.astype(labels, model.xp.int64)
    gg = np.linalg.eigvalsh(_np(ggn(model, x, labels, "cross_entropy")))
    beta = max(np.linalg.eigvalsh(m)[-1] for m in _np(output_hessian(z, labels, "cross_entropy")))
    need(
        gg[0] >= -rtol * max(abs(gg[-1]), atol) - atol
        and gg[-1] <= beta * lam[-1] / n * (1 + rtol) + atol,
        "T7",
        "GGN is not PSD or exceeds β λ_max(K)/N",
    )
    h_interp = _np(hessian(model, x, z, "mse"))
    g_interp = _np(ggn(model, x, z, "mse"))
    need(
        np.allclose(h_interp, g_interp, rtol=1e-6, atol=1e-8 * max(np.abs(g_interp).max(), 1)),
        "T7",
        "H ≠ GGN for MSE at an interpolating point",
    )
    return checked
