"""The :class:`Spectrum` of a batch of matrices and every statistic of its values.

Singular values, or the eigenvalues of symmetric matrices (:ref:`theory-spectra`).

Every statistic is computed from ``σ_i / σ_1`` (after an exact power-of-two scaling of the
matrices), so scale-invariant statistics are exactly scale invariant and nothing over- or
underflows for finite nonzero input (:ref:`theory-conventions`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _xp
from .errors import ShapeError, ZeroSpectrumError

Array = Any
Convention = Literal["energy", "roy-vetterli", "trace"]
OnZero = Literal["raise", "nan"]

__all__ = ["Convention", "OnZero", "Spectrum", "as_spectrum"]

_CONVENTIONS = ("energy", "roy-vetterli", "trace")


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Singular values (or symmetric eigenvalues) of a batch of ``m × n`` matrices.

    Build it with :meth:`from_matrix`, :meth:`from_singular_values` or :meth:`from_eigenvalues`
    rather than directly.

    Attributes
    ----------
    values : array, shape ``(..., r)``
        Singular values in descending order, ``r = min(m, n)``. For a symmetric matrix these
        are the absolute eigenvalues ``|λ_i|`` (which *are* its singular values).
    shape : tuple of int
        ``(m, n)``, the shape of each matrix (``n`` is the input dimension used by
        :meth:`typical_gain`).
    eigenvalues : array or None, shape ``(..., n)``
        For a symmetric matrix, the signed eigenvalues in ascending order; ``None`` for a
        general matrix.

    """

    values: Array
    shape: tuple[int, int]
    eigenvalues: Array | None = None
    # σ_i/σ_1 (and λ_i/σ_1) read off the prescaled decomposition: exact even where σ_1
    # itself over- or underflows; computed from ``values`` when absent
    _relative: Array | None = field(default=None, repr=False)
    _relative_eigenvalues: Array | None = field(default=None, repr=False)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_matrix(cls, a: Array, *, hermitian: bool = False) -> Spectrum:
        """Spectrum of ``a`` with shape ``(..., m, n)``.

        With ``hermitian=True`` ``a`` must be symmetric (only its lower triangle is read) and
        its eigenvalues are computed with ``eigvalsh``; the default distribution then becomes
        ``p_i = |λ_i| / Σ|λ_j|`` (:ref:`theory-conventions`).

        Raises
        ------
        ShapeError, EmptyInputError, DTypeError, NonFiniteError
            For fewer than two axes, an empty axis, a non-float dtype, NaN/Inf entries.

        """
        xp = _xp.check_matrix(a, square=hermitian)
        m, n = int(a.shape[-2]), int(a.shape[-1])
        # a power of two moves each matrix into a safe range before the decomposition and back
        # after it (both exact): no backend's SVD over- or underflows inside (#numerics-scale)
        scaled, scale = _xp.power_of_two_scaled(a, xp)
        if hermitian:
            return cls._from_checked_eigenvalues(_xp.eigvalsh(scaled, xp), xp, scale)
        s = _xp.svdvals(scaled, xp)
        return cls(values=_unscaled(s, scale, xp), shape=(m, n), _relative=_over_first(s, xp))

    @classmethod
    def from_singular_values(
        cls, s: Array, *, shape: tuple[int, int] | None = None, sort: bool = True
    ) -> Spectrum:
        """Spectrum from singular values ``s`` with shape ``(..., r)`` (non-negative).

        Parameters
        ----------
        s : array
            Singular values.
        shape : (m, n), optional
            Shape of the matrices they came from; needed for :meth:`typical_gain` and the
            default ``rtol`` of :meth:`condition_number`. Default ``(r, r)``.
        sort : bool
            Sort into descending order (pass ``False`` only if ``s`` is already sorted).

        """
        xp = _check_vector(s, "singular values")
        if _xp.concrete_bool(xp.any(s < 0)):
            raise ValueError(
                "singular values must be non-negative; for eigenvalues of a symmetric matrix use "
                "Spectrum.from_eigenvalues"
            )
        r = int(s.shape[-1])
        m, n = (r, r) if shape is None else (int(shape[0]), int(shape[1]))
        if min(m, n) != r:
            raise ShapeError(f"{r} singular values do not fit a matrix of shape {(m, n)}")
        values = xp.sort(s, axis=-1, descending=True) if sort else s
        return cls(values=values, shape=(m, n))

    @classmethod
    def from_eigenvalues(cls, eigenvalues: Array) -> Spectrum:
        """Spectrum of a symmetric ``n × n`` matrix from its eigenvalues ``(..., n)``.

        PSD (NTK, GGN) and indefinite (Hessian) matrices alike; :meth:`negative_mass` reports
        the share of ``Σ|λ|`` carried by negative eigenvalues.
        """
        xp = _check_vector(eigenvalues, "eigenvalues")
        return cls._from_checked_eigenvalues(eigenvalues, xp)

    @classmethod
    def _from_checked_eigenvalues(cls, lam: Array, xp: Any, scale: Array | None = None) -> Spectrum:
        n = int(lam.shape[-1])
        lam = xp.sort(lam, axis=-1)
        mags = xp.sort(xp.abs(lam), axis=-1, descending=True)
        top = mags[..., :1]
        return cls(
            values=_unscaled(mags, scale, xp),
            shape=(n, n),
            eigenvalues=_unscaled(lam, scale, xp),
            _relative=_over_first(mags, xp),
            _relative_eigenvalues=lam / xp.where(top > 0, top, xp.ones_like(top)),
        )

    # ----------------------------------------------------------------- basics
    @property
    def xp(self) -> Any:
        """Array namespace of the values."""
        return _xp.namespace(self.values)

    @property
    def hermitian(self) -> bool:
        """Whether the spectrum came from a symmetric eigenvalue problem."""
        return self.eigenvalues is not None

    @property
    def r(self) -> int:
        """``min(m, n)``: the number of singular values of each matrix."""
        return min(self.shape)

    def operator_norm(self) -> Array:
        """``σ_1``, the largest singular value (spectral norm)."""
        return self.values[..., 0]

    def relative_values(self) -> Array:
        """``σ_i / σ_1`` in ``[0, 1]`` (zero for a zero matrix).

        Every scale-invariant statistic is computed from these, never from ``σ_i²``, so none
        over- or underflows for a finite matrix: the results for ``A`` and ``c·A`` agree to
        rounding for every ``c ≠ 0`` (docs: numerical guarantees).
        """
        if self._relative is not None:
            return self._relative
        return _over_first(self.values, self.xp)

    def _energy(self) -> Array:
        """``Σ (σ_i/σ_1)² = ‖A‖_F² / σ_1²`` (zero for a zero matrix)."""
        u = self.relative_values()
        return self.xp.sum(u * u, axis=-1)

    def frobenius_norm(self) -> Array:
        """``‖A‖_F = (Σ σ_i²)^½``, computed as ``σ_1 (Σ (σ_i/σ_1)²)^½`` (no overflow)."""
        return self.operator_norm() * self.xp.sqrt(self._energy())

    def default_rtol(self) -> float:
        """``max(m, n) · eps(dtype)``, the default relative threshold for rank and κ."""
        return max(self.shape) * _xp.eps(self.xp, self.values.dtype)

    def rank(self, rtol: float | None = None) -> Array:
        """Numerical rank: the number of ``σ_i > rtol · σ_1`` (integer array)."""
        xp = self.xp
        tol = self.default_rtol() if rtol is None else rtol
        big = self.relative_values() > tol
        integral = xp.__array_namespace_info__().default_dtypes()["integral"]
        return xp.sum(xp.astype(big, integral), axis=-1)

    def negative_mass(self) -> Array:
        """``Σ_{λ<0} |λ| / Σ|λ|`` for a symmetric spectrum (:ref:`theory-conventions`)."""
        if self.eigenvalues is None:
            raise ValueError(
                "negative mass needs eigenvalues; build the spectrum with hermitian=True or "
                "Spectrum.from_eigenvalues"
            )
        xp = self.xp
        lam = self._relative_eigenvalues
        if lam is None:
            s1 = self.values[..., :1]
            lam = self.eigenvalues / xp.where(s1 > 0, s1, xp.ones_like(s1))
        neg = xp.sum(xp.where(lam < 0, -lam, xp.zeros_like(lam)), axis=-1)
        return neg / self._checked_total(self.relative_values(), "raise")[0]

    # ----------------------------------------------------------------- distribution and entropy
    def _weights(self, convention: Convention | None) -> Array:
        convention = self._resolve(convention)
        u = self.relative_values()  # p is scale-invariant: σ/σ_1 never over- or underflows
        return u * u if convention == "energy" else u

    def _resolve(self, convention: Convention | None) -> str:
        if convention is None:
            return "trace" if self.hermitian else "energy"
        if convention not in _CONVENTIONS:
            raise ValueError(f"convention must be one of {_CONVENTIONS}; got {convention!r}")
        if convention == "trace" and not self.hermitian:
            raise ValueError(
                "convention='trace' (p_i = |λ_i| / Σ|λ_j|) needs a symmetric matrix; pass "
                "hermitian=True, or use 'roy-vetterli' (p_i = σ_i / Σ σ_j) for a general matrix"
            )
        return convention

    def _zero_matrices(self, zero: Array, on_zero: OnZero, undefined: str) -> Array | None:
        """The mask ``zero`` of zero matrices, ``None`` if there is none (or it is traced).

        With ``on_zero="raise"`` a zero matrix raises ``ZeroSpectrumError`` saying it has no
        ``undefined``.
        """
        if on_zero not in ("raise", "nan"):
            raise ValueError(f"on_zero must be 'raise' or 'nan'; got {on_zero!r}")
        if not _xp.concrete_bool(self.xp.any(zero)):
            return None
        if on_zero == "raise":
            raise ZeroSpectrumError(
                f"a zero matrix has no {undefined}; drop it, or pass on_zero='nan' to get NaN "
                "for it"
            )
        return zero

    def _checked_total(self, w: Array, on_zero: OnZero) -> tuple[Array, Array | None]:
        """``Σ w`` with zero totals replaced by 1, and the mask of zero matrices (or None)."""
        xp = self.xp
        total = xp.sum(w, axis=-1)
        zero = self._zero_matrices(
            total == 0,
            on_zero,
            "spectral distribution (entropy, effective rank and κ_attr are undefined)",
        )
        if zero is None:
            return total, None
        return xp.where(zero, xp.ones_like(total), total), zero

    def distribution(
        self, convention: Convention | None = None, on_zero: OnZero = "raise"
    ) -> Array:
        """Spectral distribution ``p`` on the simplex (:ref:`theory-spectra`).

        ``"energy"`` (default for a general matrix): ``p_i = σ_i² / ‖A‖_F²``.
        ``"roy-vetterli"``: ``p_i = σ_i / Σ σ_j`` (Roy & Vetterli 2007).
        ``"trace"`` (default for a symmetric matrix): ``p_i = |λ_i| / Σ |λ_j|``, which for a PSD
        Gram matrix ``K = G Gᵀ`` equals the energy distribution of ``G`` (so ``H(K) = H(G)``).
        """
        w = self._weights(convention)
        total, zero = self._checked_total(w, on_zero)
        p = w / total[..., None]
        if zero is not None:
            p = self.xp.where(zero[..., None], self.xp.nan, p)
        return p

    def entropy(
        self,
        convention: Convention | None = None,
        *,
        normalized: bool = False,
        on_zero: OnZero = "raise",
    ) -> Array:
        """Spectral entropy ``H = −Σ p_i log p_i`` (natural log, ``0 log 0 = 0``).

        Definition and range: :ref:`theory-spectra`.

        With ``normalized=True`` returns ``H / log r`` in ``[0, 1]`` (needs ``r ≥ 2``).
        """
        xp = self.xp
        p = self.distribution(convention, on_zero)
        safe = xp.where(p > 0, p, xp.ones_like(p))  # keeps log and its gradient finite at p = 0
        h = 0.0 - xp.sum(p * xp.log(safe), axis=-1)  # not −0.0 for one nonzero value
        if normalized:
            if self.r < 2:
                raise ShapeError(
                    "normalised entropy H / log r needs r = min(m, n) ≥ 2; this matrix has r = 1"
                )
            h = h / math.log(self.r)
        return h

    def effective_rank(
        self, convention: Convention | None = None, *, on_zero: OnZero = "raise"
    ) -> Array:
        """``erank = exp H`` (Roy & Vetterli 2007), in ``[1, rank A]``."""
        return self.xp.exp(self.entropy(convention, on_zero=on_zero))

    # ----------------------------------------------------------------- norms and ratios
    def stable_rank(self, *, on_zero: OnZero = "raise") -> Array:
        """``srank = ‖A‖_F² / σ_1²`` in ``[1, rank A]``.

        A zero matrix has none (``0/0``): ``ZeroSpectrumError``, or NaN with ``on_zero="nan"``.
        """
        norm = self.operator_norm()
        self._zero_matrices(norm == 0, on_zero, "stable rank (‖A‖_F² / σ_1² is 0/0)")
        return self.xp.where(norm > 0, self._energy(), self.xp.nan)

    def condition_number(self, *, rtol: float | None = None, k: int | None = None) -> Array:
        """``κ = σ_1 / σ_r``, ``+∞`` when ``σ_r ≤ rtol · σ_1``; or ``κ_k = σ_1 / σ_k`` if ``k``.

        Parameters
        ----------
        rtol : float, optional
            Relative singularity threshold; default ``max(m, n) · eps(dtype)``.
        k : int, optional
            Truncation ``1 ≤ k ≤ r``: return ``σ_1 / σ_k`` (``+∞`` if ``σ_k = 0``).

        """
        xp = self.xp
        u = self.relative_values()  # κ = 1 / (σ_k/σ_1): exact even where σ_1 overflows
        if k is not None:
            if not 1 <= int(k) <= self.r:
                raise ValueError(f"k must satisfy 1 ≤ k ≤ r = {self.r}; got k={k}")
            uk = u[..., int(k) - 1]
            ok = uk > 0
        else:
            tol = self.default_rtol() if rtol is None else float(rtol)
            if tol < 0:
                raise ValueError(f"rtol must be non-negative; got {rtol}")
            uk = u[..., -1]
            ok = uk > tol
        return xp.where(ok, 1.0 / xp.where(ok, uk, xp.ones_like(uk)), xp.inf)

    def typical_gain(self) -> Array:
        """``τ = ‖A‖_F / √n`` with ``n`` the number of columns (input dimension); in ``[0, σ_1]``.

        It is the root-mean-square gain ``(E‖A δ‖² / ε²)^½`` for isotropic ``δ`` (:ref:`theory-t1`).
        """
        return self.operator_norm() * self.xp.sqrt(self._energy() / self.shape[1])

    def attribution_condition_number(self, *, on_zero: OnZero = "raise") -> Array:
        """``κ_attr = σ_1 / (‖A‖_F / √r) = (r / srank)^½`` in ``[1, √r]``."""
        xp = self.xp
        total, zero = self._checked_total(self._weights("energy"), on_zero)
        k = xp.sqrt(self.r / total)  # Σ (σ_i/σ_1)² ∈ [1, r]: κ_attr ∈ [1, √r] exactly
        return k if zero is None else xp.where(zero, xp.nan, k)


def _unscaled(values: Array, scale: Array | None, xp: Any) -> Array:
    """Values of the scaled matrices multiplied back by their power-of-two scales.

    Where the true value exceeds the dtype's range the product is ``inf`` (IEEE overflow, the
    correctly rounded answer); the statistics read the exact ratios instead.
    """
    if scale is None:
        return values
    with warnings.catch_warnings():  # NumPy warns on overflow
        warnings.simplefilter("ignore", RuntimeWarning)
        return values * scale[..., None]


def _over_first(values: Array, xp: Any) -> Array:
    """``values / values[..., 0]`` (zero where the first is zero): ``σ_i / σ_1`` in ``[0, 1]``."""
    top = values[..., :1]
    ok = top > 0
    return xp.where(ok, values / xp.where(ok, top, xp.ones_like(top)), xp.zeros_like(top))


def _check_vector(s: Array, what: str) -> Any:
    xp = _xp.namespace(s)
    if s.ndim < 1:
        raise ShapeError(f"{what} must have shape (..., r); got a 0-d array")
    if any(int(d) == 0 for d in s.shape):
        from .errors import EmptyInputError

        raise EmptyInputError(f"{what} have shape {tuple(s.shape)} with a zero-length axis")
    _xp.check_real_floating(s, xp, what)
    _xp.check_working_precision(s, xp, what)
    _xp.check_finite(s, xp, what)
    return xp


def as_spectrum(a: Array | Spectrum, hermitian: bool = False) -> Spectrum:
    """``a`` if it is a :class:`Spectrum`, else the spectrum of the matrices ``a``."""
    if isinstance(a, Spectrum):
        return a
    return Spectrum.from_matrix(a, hermitian=hermitian)
