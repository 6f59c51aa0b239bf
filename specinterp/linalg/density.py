"""Spectral density and ``tr f(A)`` by stochastic Lanczos quadrature (:ref:`theory-algorithms`).

For a unit probe ``v``, ``vᵀ f(A) v = Σ_i (vᵀ u_i)² f(λ_i)`` is a Riemann–Stieltjes integral
against ``v``'s spectral measure; ``m`` Lanczos steps give its Gauss rule: nodes ``θ_j`` (the
eigenvalues of the tridiagonal ``T``) and weights ``τ_j = (e_1ᵀ y_j)²`` (Golub & Meurant 2010).
Averaging over Rademacher probes estimates the normalised eigenvalue density
(Ubaru, Chen & Saad 2017; Lin, Saad & Yang 2016), smoothed with a Gaussian kernel as in
Ghorbani, Krishnan & Xiao (2019).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np

from .. import _xp
from ._scaling import SelfScaling, unscale
from .compression import compression_of
from .operator import LinearOperator, aslinearoperator
from .results import Density, TraceResult
from .tridiagonal import lanczos_tridiagonal

Array = Any
Reorthogonalize = Literal["full", "partial"]

__all__ = ["gauss_rule", "slq_nodes", "slq_rules", "spectral_density", "trace_function"]

_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log": np.log,
    "square": np.square,
    "abs": np.abs,
}


def slq_rules(
    op: LinearOperator | Array,
    num_steps: int,
    *,
    seed: int | np.random.Generator | None = 0,
    reorthogonalize: Reorthogonalize = "full",
    with_half: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """The Gauss rule of one Rademacher probe after another: ``(nodes, weights, products)``.

    Unending: the caller takes as many probes as it needs (the first ``k`` are those of
    :func:`slq_nodes` with ``num_probes=k`` and the same seed). ``nodes`` and ``weights`` have
    ``min(num_steps, n)`` entries (one more for an operator with a compression, ``A = L Ã Lᵀ``:
    the rules are ``Ã``'s with weights times ``m/n`` and an exact node at 0 of weight
    ``1 − m/n``); a probe whose Lanczos run ends early (an invariant subspace:
    the rule is already exact) is padded with zero-weight copies of its last node.
    ``reorthogonalize`` is that of :func:`~specinterp.linalg.tridiagonal.lanczos_tridiagonal`.
    ``with_half`` also yields the rule of the first half of the steps (the leading principal
    ``⌈s/2⌉ × ⌈s/2⌉`` block of ``T``: free), ``(nodes, weights)``, for a quadrature-error estimate.
    """
    op = aslinearoperator(op)
    if not op.symmetric:
        raise ValueError("stochastic Lanczos quadrature needs a symmetric operator")
    if num_steps < 1:
        raise ValueError("num_probes and num_steps must be ≥ 1")
    comp = compression_of(op)
    if comp is not None:  # A = L Ã Lᵀ: Ã's rules, weighted m/n, and the zeros' exact atom
        inner = slq_rules(
            comp.operator, num_steps, seed=seed, reorthogonalize=reorthogonalize,
            with_half=with_half,
        )  # fmt: skip
        yield from (_with_zeros(rule, comp.operator.shape[0] / op.shape[0]) for rule in inner)
        return
    n = op.shape[0]
    steps = min(int(num_steps), n)
    rng = _xp.as_generator(seed, op.xp, op.device)
    scaled = SelfScaling(op)  # no over- or underflow inside, whatever the operator's norm
    while True:
        v = rng.rademacher((n,), dtype=op.dtype)
        alpha, beta, used = lanczos_tridiagonal(scaled, v, steps, reorthogonalize=reorthogonalize)
        theta, w = gauss_rule(alpha, beta)
        nodes, weights = np.full(steps, theta[-1]), np.zeros(steps)
        nodes[:used], weights[:used] = theta, w
        c = unscale(scaled.scale)
        if not with_half:
            yield nodes * c, weights, used
            continue
        h = (used + 1) // 2
        half_nodes, half_weights = gauss_rule(alpha[:h], beta[: h - 1])
        yield nodes * c, weights, used, half_nodes * c, half_weights


def _with_zeros(rule: tuple[Any, ...], share: float) -> tuple[Any, ...]:
    """A compression's rule as the whole operator's (:ref:`theory-slq`).

    Weights times ``share = m/n``, and a node at 0 of weight ``1 − share``: the zeros outside
    the subspace.
    """
    nodes, weights, used, *half = rule
    out = [np.append(nodes, 0.0), np.append(weights * share, 1.0 - share), used]
    if half:
        out += [np.append(half[0], 0.0), np.append(half[1] * share, 1.0 - share)]
    return tuple(out)


def gauss_rule(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the Gauss rule of the tridiagonal ``(α, β)``."""
    t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    theta, y = np.linalg.eigh(t)
    return theta, y[0, :] ** 2


def slq_nodes(
    op: LinearOperator | Array,
    *,
    num_probes: int = 10,
    num_steps: int = 80,
    seed: int | np.random.Generator | None = 0,
    reorthogonalize: Reorthogonalize = "full",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Gauss quadrature nodes and weights ``(num_probes, num_steps)`` of each probe.

    A probe whose Lanczos run ends early (invariant subspace: the rule is already exact) is
    padded with zero-weight nodes. Returns nodes, weights and the number of products.
    """
    if num_probes < 1 or num_steps < 1:
        raise ValueError("num_probes and num_steps must be ≥ 1")
    rules = list(
        itertools.islice(
            slq_rules(op, num_steps, seed=seed, reorthogonalize=reorthogonalize), num_probes
        )
    )
    nodes = np.stack([r[0] for r in rules])
    weights = np.stack([r[1] for r in rules])
    return nodes, weights, sum(r[2] for r in rules)


def _slq_options(probes: int, steps: int, seed: Any, reorthogonalize: str) -> dict[str, Any]:
    return {
        "num_probes": probes,
        "num_steps": steps,
        "seed": seed,
        "reorthogonalize": reorthogonalize,
    }


def spectral_density(
    op: LinearOperator | Array,
    *,
    num_probes: int = 10,
    num_steps: int = 80,
    seed: int | np.random.Generator | None = 0,
    grid: np.ndarray | int = 512,
    sigma: float | None = None,
    reorthogonalize: Reorthogonalize = "full",
) -> Density:
    """Smoothed spectral density of a symmetric operator by SLQ.

    Parameters
    ----------
    op : symmetric LinearOperator, dense array, or SciPy sparse matrix or operator
    num_probes, num_steps : int
        Rademacher probes and Lanczos steps per probe (``num_probes · num_steps`` products).
    seed : int, Generator or None
    grid : int or array
        Evaluation points, or their number on ``[θ_min − 5σ, θ_max + 5σ]``.
    sigma : float, optional
        Gaussian kernel width; default 1 % of the spread of the nodes.
    reorthogonalize : {"full", "partial"}
        ``"partial"`` keeps each probe's Lanczos basis only semi-orthogonal (reorthogonalising
        when Simon's estimate of the loss exceeds ``√eps``): far fewer reads of the basis on a
        large operator, and Gauss rules within Wasserstein distance ``√eps · ‖A‖`` of the
        fully reorthogonalised ones (:ref:`theory-slq`; tested).

    Returns
    -------
    Density
        The quadrature rules, the grid and the density (integrating to 1).

    """
    nodes, weights, matvecs = slq_nodes(
        op, **_slq_options(num_probes, num_steps, seed, reorthogonalize)
    )
    lo, hi = float(nodes.min()), float(nodes.max())
    spread = max(hi - lo, abs(hi), 1e-300)
    sigma = 0.01 * spread if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; got {sigma}")
    if isinstance(grid, int):
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, grid)
    grid = np.asarray(grid, dtype=np.float64)
    diff = (grid[:, None, None] - nodes[None, :, :]) / sigma
    kern = np.exp(-0.5 * diff**2) / (sigma * math.sqrt(2 * math.pi))
    density = np.einsum("gpj,pj->g", kern, weights) / nodes.shape[0]
    return Density(nodes=nodes, weights=weights, grid=grid, density=density, num_matvecs=matvecs)


def trace_function(
    op: LinearOperator | Array,
    f: str | Callable[[np.ndarray], np.ndarray],
    *,
    num_probes: int = 10,
    num_steps: int = 40,
    seed: int | np.random.Generator | None = 0,
    reorthogonalize: Reorthogonalize = "full",
) -> TraceResult:
    """Estimate ``tr f(A)`` by SLQ: ``n · mean_p Σ_j τ_{pj} f(θ_{pj})``.

    ``f`` is ``"log"`` (``log det`` of a positive definite ``A``), ``"square"``
    (``‖A‖_F²``), ``"abs"`` (nuclear norm) or a vectorised callable on NumPy arrays. The
    standard error is over probes (``num_probes ≥ 2``); ``reorthogonalize`` as in
    :func:`spectral_density`.
    """
    fn = _FUNCTIONS.get(f) if isinstance(f, str) else f
    if fn is None:
        raise ValueError(f"f must be one of {sorted(_FUNCTIONS)} or a callable; got {f!r}")
    if num_probes < 2:
        raise ValueError("num_probes must be ≥ 2 for a standard error")
    op = aslinearoperator(op)
    nodes, weights, matvecs = slq_nodes(
        op, **_slq_options(num_probes, num_steps, seed, reorthogonalize)
    )
    if f == "log" and np.any(nodes[weights > 0] <= 0):
        raise ValueError(
            "tr log A needs a positive definite operator, but a quadrature node is ≤ 0; "
            "add a shift (A + μI) or use 'abs'"
        )
    values = np.where(weights > 0, fn(np.where(weights > 0, nodes, 1.0)), 0.0)
    per_probe = op.shape[0] * np.sum(weights * values, axis=1)
    return TraceResult(
        float(np.mean(per_probe)),
        float(np.std(per_probe, ddof=1) / math.sqrt(num_probes)),
        matvecs,
    )
