"""Matrix-level theorems of :ref:`theory-theorems` (L1, L2, T1, T2, T10), each returning both sides.

Each function evaluates the quantities of one inequality on a (batch of) matrices and returns
an :class:`Inequality` (a chain ``t_0 ≤ t_1 ≤ …``) or, for the tail bound T2, a
:class:`TailBound`. The property tests of the library check these on random matrices;
users can call :meth:`Inequality.holds` on their own operators.

The statements and proofs are in :ref:`theory-theorems`; the framework is that of Katende,
arXiv:2602.01136 (2026). The statements are this library's own formalisation where the paper's
theorem text was not available.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from . import _xp
from .errors import NonFiniteError
from .spectrum import Spectrum
from .spectrum import as_spectrum as _spectrum

Array = Any

__all__ = [
    "Inequality",
    "LabelNoiseStability",
    "TailBound",
    "deep_linear_frobenius",
    "entropy_attribution_bound",
    "gaussian_sensitivity_tail",
    "layer_product_bound",
    "ntk_label_noise_bound",
    "stable_vs_effective_rank",
    "typical_sensitivity",
]


@dataclass(frozen=True, eq=False)
class Inequality:
    """A chain of inequalities ``terms[0] ≤ terms[1] ≤ …`` evaluated on arrays.

    Attributes
    ----------
    name : str
        The theorem label (``"L1"``, ``"T1"``, ...).
    terms : tuple of (str, array)
        Named sides in increasing order; arrays share the batch shape of the input.

    """

    name: str
    terms: tuple[tuple[str, Array], ...]

    def __getitem__(self, key: str) -> Array:
        """The side called ``key``."""
        for name, value in self.terms:
            if name == key:
                return value
        raise KeyError(f"{self.name} has no term {key!r}; terms: {[n for n, _ in self.terms]}")

    def margins(self) -> tuple[Array, ...]:
        """``terms[i+1] − terms[i]`` for each link of the chain (≥ 0 where it holds)."""
        values = [v for _, v in self.terms]
        return tuple(b - a for a, b in pairwise(values))

    def holds(self, rtol: float = 1e-10, atol: float = 0.0) -> bool:
        """Whether every link holds up to ``a ≤ b + rtol·|b| + atol`` for every batch entry."""
        values = [v for _, v in self.terms]
        for a, b in pairwise(values):
            xp = _xp.namespace(a, b) if hasattr(a, "shape") else None
            if xp is None:
                if not a <= b + rtol * abs(b) + atol:
                    return False
            elif not bool(xp.all(a <= b + rtol * xp.abs(b) + atol)):
                return False
        return True


@dataclass(frozen=True, eq=False)
class TailBound:
    """Two-sided concentration bounds for ``‖A δ‖²`` (:ref:`theory-t2`).

    ``P(‖Aδ‖² ≥ upper) ≤ probability`` and ``P(‖Aδ‖² ≤ lower) ≤ probability``, with ``mean``
    the exact expectation ``E‖Aδ‖²``.
    """

    mean: Array
    lower: Array
    upper: Array
    probability: float


def stable_vs_effective_rank(a: Array | Spectrum, *, rtol: float | None = None) -> Inequality:
    """L1: ``srank(A) ≤ erank(A) ≤ rank(A)`` (energy convention).

    Shannon entropy dominates min-entropy ``−log max p_i = log(‖A‖_F²/σ_1²)``, and is at most
    the log of the support size. ``rank`` is the numerical rank at ``rtol``.
    """
    spec = _spectrum(a)
    xp = spec.xp
    rank = xp.astype(spec.rank(rtol), spec.values.dtype)
    return Inequality(
        "L1",
        (
            ("stable_rank", spec.stable_rank()),
            ("effective_rank", spec.effective_rank("energy")),
            ("rank", rank),
        ),
    )


def entropy_attribution_bound(a: Array | Spectrum) -> Inequality:
    """L2: ``r · exp(−H(A)) ≤ κ_attr(A)² ≤ r`` with ``r = min(m, n)``.

    The lower bound follows from L1 (``srank ≤ erank``) and ``κ_attr² = r / srank``.
    Entropy bounds κ_attr from below without ordering samples.
    """
    spec = _spectrum(a)
    xp = spec.xp
    h = spec.entropy("energy")
    k2 = spec.attribution_condition_number() ** 2
    return Inequality(
        "L2",
        (
            ("r_exp_neg_entropy", spec.r * xp.exp(-h)),
            ("attribution_condition_squared", k2),
            ("r", xp.full_like(k2, float(spec.r))),
        ),
    )


def typical_sensitivity(a: Array | Spectrum, eps: float = 1.0) -> Inequality:
    """T1: typical versus worst-case sensitivity to isotropic input noise.

    For ``δ`` with ``E[δ δᵀ] = (ε²/n) I`` (uniform on the ε-sphere, or ``N(0, ε²/n · I)``)::

        E‖Aδ‖² = ε²‖A‖_F²/n  ≤  ε² σ_1² exp(H)/n  ≤  ε² σ_1² rank/n  ≤  ε² σ_1²

    where the last term is the squared worst case ``max_{‖δ‖=ε} ‖Aδ‖²``. The first term is
    exact (an expectation), the chain follows from L1 and ``rank ≤ n``.
    """
    if not eps > 0:
        raise ValueError(f"eps (the perturbation radius) must be positive; got {eps}")
    spec = _spectrum(a)
    xp = spec.xp
    n = spec.shape[1]
    scale = eps**2 / n
    s1_sq = _finite_squared_gain(spec, 1.0, "T1")
    return Inequality(
        "T1",
        (
            ("expected_squared_gain", scale * s1_sq * spec._energy()),
            # a zero matrix has no entropy, but every side of the chain is 0 for it
            (
                "entropy_bound",
                xp.where(
                    s1_sq > 0,
                    scale
                    * s1_sq
                    * xp.where(s1_sq > 0, spec.effective_rank("energy", on_zero="nan"), 1.0),
                    0.0,
                ),
            ),
            ("rank_bound", scale * s1_sq * xp.astype(spec.rank(), s1_sq.dtype)),
            ("worst_case_squared", eps**2 * s1_sq),
        ),
    )


def gaussian_sensitivity_tail(a: Array | Spectrum, eps: float, t: float) -> TailBound:
    """T2: Laurent–Massart concentration of ``‖Aδ‖²`` for ``δ ~ N(0, ε²/n · I)``.

    With ``a_i = ε² σ_i² / n`` (Laurent & Massart 2000, Lemma 1), for every ``t > 0``::

        P(‖Aδ‖² ≥ Σa_i + 2‖a‖_2 √t + 2‖a‖_∞ t) ≤ e^{−t}
        P(‖Aδ‖² ≤ Σa_i − 2‖a‖_2 √t) ≤ e^{−t}
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps}")
    if not t > 0:
        raise ValueError(f"t must be positive (the bound holds with probability 1 − e^-t); got {t}")
    spec = _spectrum(a)
    xp = spec.xp
    # a_i = linf · (σ_i/σ_1)²: no σ_i⁴ is formed (it overflows long before the bound does)
    linf = _finite_squared_gain(spec, eps**2 / spec.shape[1], "T2")
    u2 = spec.relative_values() ** 2
    mean = linf * xp.sum(u2, axis=-1)
    l2 = linf * xp.sqrt(xp.sum(u2 * u2, axis=-1))
    root = math.sqrt(t)
    return TailBound(
        mean=mean,
        lower=mean - 2 * l2 * root,
        upper=mean + 2 * l2 * root + 2 * linf * t,
        probability=math.exp(-t),
    )


def _finite_squared_gain(spec: Spectrum, factor: float, name: str) -> Array:
    """``factor · σ_1²``, or :class:`NonFiniteError` where it overflows the dtype."""
    with warnings.catch_warnings():  # NumPy warns on the overflow reported below
        warnings.simplefilter("ignore", RuntimeWarning)
        out = factor * spec.operator_norm() ** 2
    if _xp.all_finite(out, spec.xp) is False:
        raise NonFiniteError(
            f"{name} compares squared gains ε²σ_1², which overflow {out.dtype} for this matrix "
            "and eps; scale the matrix (or eps) down — the bound is homogeneous in both"
        )
    return out


def deep_linear_frobenius(widths: Sequence[int], variances: Sequence[float]) -> float:
    """T10: ``E‖W_L ⋯ W_1‖_F² = n_L Π_l σ_l²`` for independent Gaussian-like factors.

    Parameters
    ----------
    widths : (n_0, n_1, ..., n_L)
        Layer widths; ``W_l`` has shape ``(n_l, n_{l−1})``.
    variances : (σ_1², ..., σ_L²)
        ``W_l`` has iid mean-zero entries of variance ``σ_l² / n_{l−1}``.

    Returns
    -------
    float
        The exact expectation (it does not depend on the hidden widths).

    """
    widths = [int(w) for w in widths]
    if len(widths) != len(variances) + 1 or len(variances) == 0:
        raise ValueError(
            f"need L+1 widths for L variances; got {len(widths)} widths and {len(variances)}"
        )
    if min(widths) < 1 or min(variances) < 0:
        raise ValueError("widths must be positive and variances non-negative")
    return float(widths[-1] * math.prod(float(v) for v in variances))


def layer_product_bound(
    jacobian: Array,
    weights: Sequence[Array],
    diagonals: Sequence[Array],
    lipschitz: Sequence[float] | None = None,
) -> Inequality:
    """T3: ``σ_1(J(x)) ≤ Π_l ‖W_l‖₂ · Π_{l<L} ‖D_l(x)‖₂ ≤ Π_l ‖W_l‖₂ · Π_l Lip(φ_l)``.

    Parameters
    ----------
    jacobian : array ``(N, C, d)``
        Per-sample Jacobians.
    weights : sequence of ``(n_l, n_{l−1})`` arrays
        ``W_1, …, W_L``.
    diagonals : sequence of ``(N, n_l)`` arrays
        ``diag D_l(x)`` for ``l < L``.
    lipschitz : sequence of float, optional
        ``Lip(φ_l)``; the last link is omitted when absent.

    """
    xp = _xp.namespace(jacobian)
    s1 = Spectrum.from_matrix(jacobian).operator_norm()
    w_prod = math.prod(
        float(_xp.to_numpy(Spectrum.from_matrix(w).operator_norm())) for w in weights
    )
    d_prod = xp.ones_like(s1)
    for d in diagonals:
        d_prod = d_prod * xp.max(xp.abs(d), axis=-1)
    terms = [("operator_norm", s1), ("activation_product", w_prod * d_prod)]
    if lipschitz is not None:
        terms.append(
            ("lipschitz_product", xp.full_like(s1, w_prod * math.prod(float(v) for v in lipschitz)))
        )
    return Inequality("T3", tuple(terms))


@dataclass(frozen=True, eq=False)
class LabelNoiseStability:
    """T8 for kernel (NTK-regime) regression: actual changes and their bounds."""

    coefficients: Inequality
    predictions: Inequality
    max_step: float
    rate: float


def ntk_label_noise_bound(
    kernel: Array,
    cross_kernel: Array,
    delta: Array,
    *,
    ridge: float = 0.0,
    step: float | None = None,
) -> LabelNoiseStability:
    """T8: label-noise stability of the linearised model trained to convergence on MSE.

    With dual coefficients ``α = (K + μI)^{-1}(y − f_0(X))``, perturbing the labels by ``Δ``
    changes ``α`` by ``‖(K + μI)^{-1} Δ‖ ≤ ‖Δ‖ / (λ_min(K) + μ)`` and the predictions at test
    points by ``‖K(X*, X)(K + μI)^{-1} Δ‖ ≤ ‖K(X*, X)‖₂ ‖Δ‖ / (λ_min(K) + μ)``. Full-batch
    gradient descent on the linearised model (mean loss ``(1/2N)‖f(X) − y‖²``, no ridge) maps
    the training residual ``r`` to ``(I − η K/N) r``: it converges iff ``η < 2N/λ_max(K)`` and
    then contracts at rate ``max(|1 − η λ_min/N|, |1 − η λ_max/N|)`` per step, which is
    ``1 − λ_min/λ_max`` at the default ``η = N/λ_max``
    (docs/theory.md#theory-t8).

    Parameters
    ----------
    kernel : ``(N, N)`` PSD array
        The train NTK ``K`` (trace NTK, or the sample-major full NTK with ``Δ`` flattened).
    cross_kernel : ``(M, N)`` array
        ``K(X*, X)``.
    delta : ``(N,)`` array
        The label perturbation.
    ridge : float
        ``μ ≥ 0``.

    """
    xp = _xp.namespace(kernel, cross_kernel, delta)
    if ridge < 0:
        raise ValueError(f"ridge must be ≥ 0; got {ridge}")
    n = int(kernel.shape[0])
    lam = xp.linalg.eigvalsh(kernel)
    lam_min, lam_max = float(lam[0]), float(lam[-1])
    if lam_min + ridge <= 0:
        raise ValueError("K + μI is singular: add a ridge μ > 0")
    eye = xp.eye(n, dtype=kernel.dtype, device=_xp.device(kernel))
    d_alpha = xp.linalg.solve(kernel + ridge * eye, delta[:, None])[:, 0]
    d_pred = cross_kernel @ d_alpha
    norm_delta = float(xp.linalg.vector_norm(delta))
    cross_norm = float(_xp.to_numpy(Spectrum.from_matrix(cross_kernel).operator_norm()))
    denom = lam_min + ridge
    eta = n / lam_max if step is None else float(step)
    return LabelNoiseStability(
        coefficients=Inequality(
            "T8",
            (
                ("coefficient_change", xp.linalg.vector_norm(d_alpha)),
                ("bound", xp.asarray(norm_delta / denom)),
            ),
        ),
        predictions=Inequality(
            "T8",
            (
                ("prediction_change", xp.linalg.vector_norm(d_pred)),
                ("bound", xp.asarray(cross_norm * norm_delta / denom)),
            ),
        ),
        max_step=2 * n / lam_max,
        rate=max(abs(1 - eta * lam_min / n), abs(1 - eta * lam_max / n)),
    )
