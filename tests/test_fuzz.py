"""Fuzz suite: every public entry point on malformed, extreme and mixed input (docs: numerics).

Each call must either return a value inside its documented range, or raise an error the
library raises on purpose — a :class:`~specinterp.errors.SpecinterpError`, or a ``ValueError``
/ ``TypeError`` raised from the library's own code — with a message. Never a raw error from
NumPy / torch / JAX, never a silent NaN, and the scale-invariant statistics of ``A`` and
``2^k A`` agree. Inputs: 0-d to 3-d arrays with empty axes, float64 / float32 / float16 /
bfloat16 / integer / boolean / complex dtypes, NaN and ±inf entries, zero matrices, entries
from 1e-300 to 1e300 (1e±36 in float32), on NumPy, array-api-strict, PyTorch and JAX, and
mixtures of libraries. About 12,000 calls per run (``test_call_budget`` checks the count);
``SPECINTERP_FUZZ_SCALE=10`` runs ten times as many examples.
"""

from __future__ import annotations

import math
import os
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import specinterp.adapters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import specinterp as si
from specinterp import _xp, bounds, rmt
from specinterp.errors import SpecinterpError, ZeroSpectrumError
from specinterp.linalg import aslinearoperator

SCALE = float(os.environ.get("SPECINTERP_FUZZ_SCALE", "1"))
CALLS: Counter[str] = Counter()
LIBRARY = (Path(si.__file__).parent, Path(si.adapters.__file__).parent)
FLOATS = ("float64", "float32")
KINDS = (
    "float64",
    "float32",
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "bool",
    "complex128",
)


def _examples(n: int) -> Any:
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _backends() -> list[str]:
    names = ["numpy", "strict"]
    for mod in ("torch", "jax"):
        try:
            __import__(mod)
            names.append(mod)
        except ImportError:
            pass
    return names


BACKENDS = _backends()


def _convert(a: np.ndarray, backend: str, kind: str) -> Any:
    """``a`` in ``backend`` with dtype ``kind``, or None where the library has no such dtype."""
    if backend == "numpy":
        return None if kind == "bfloat16" else a.astype(kind)
    if backend == "strict":
        import array_api_strict as xps

        if kind in ("float16", "bfloat16"):
            return None
        return xps.asarray(a.astype(kind))
    if backend == "torch":
        import torch

        if kind == "bfloat16":
            return torch.as_tensor(a.astype("float32")).to(torch.bfloat16)
        return torch.as_tensor(a.astype(kind))
    import jax
    import jax.numpy as jnp

    if kind in ("float64", "complex128") and not jax.config.jax_enable_x64:
        return None
    return jnp.asarray(
        a.astype("float32" if kind == "bfloat16" else kind),
        dtype=jnp.bfloat16 if kind == "bfloat16" else None,
    )


@st.composite
def fuzz_arrays(draw: Any, min_ndim: int = 0, max_ndim: int = 3, square: bool = False) -> Any:
    """``(array, kind, description)``: an array of any backend, dtype, shape and magnitude."""
    backend = draw(st.sampled_from(BACKENDS))
    kind = draw(st.sampled_from(KINDS))
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = [draw(st.integers(0 if draw(st.integers(0, 9)) == 0 else 1, 5)) for _ in range(ndim)]
    if square and ndim >= 2:
        shape[-1] = shape[-2]
    seed = draw(st.integers(0, 2**32 - 1))
    big = 300 if kind != "float32" else 36
    exponent = draw(st.sampled_from([0, 0, -big, big, draw(st.integers(-big, big))]))
    special = draw(st.sampled_from([None, None, None, "nan", "inf", "zero", "rank1"]))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape) * 10.0**exponent
    if square and ndim >= 2:
        a = a + np.swapaxes(a, -1, -2)
    if a.size and special == "nan":
        a.flat[rng.integers(a.size)] = np.nan
    elif a.size and special == "inf":
        a.flat[rng.integers(a.size)] = -np.inf
    elif special == "zero":
        a = np.zeros(shape)
    elif special == "rank1" and ndim >= 2:
        a = np.ones(shape) * 10.0**exponent
    if kind == "int64":
        a = np.nan_to_num(np.clip(a, -1e6, 1e6)).round()
    elif kind == "bool":
        a = np.nan_to_num(a) > 0
    with np.errstate(over="ignore"):
        arr = _convert(a, backend, kind)
    if arr is None:
        arr = _convert(a, "numpy", "float64")
        kind, backend = "float64", "numpy"
    if kind == "float16" or kind == "float32":
        with np.errstate(over="ignore", invalid="ignore"):
            a = a.astype(kind).astype(np.float64)
    return arr, kind, f"{backend} {kind} shape {tuple(shape)} 1e{exponent} {special}"


def _raised_on_purpose(exc: BaseException, what: str) -> None:
    assert str(exc), f"{what}: {type(exc).__name__} without a message"
    if isinstance(exc, SpecinterpError):
        return
    last = Path(traceback.extract_tb(exc.__traceback__)[-1].filename).resolve()
    ours = any(last.is_relative_to(p.resolve()) for p in LIBRARY)
    assert isinstance(exc, ValueError | TypeError) and ours, (
        f"{what}: raw {type(exc).__name__} from {last}: {exc}"
    )


def call(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """``(True, value)`` or ``(False, exception)``; only errors raised on purpose pass."""
    CALLS[name] += 1
    try:
        return True, fn(*args, **kwargs)
    except Exception as exc:
        _raised_on_purpose(exc, name)
        return False, exc


def _np(a: Any) -> np.ndarray:
    return np.asarray(_xp.to_numpy(a), dtype=np.float64)


def _tol(kind: str) -> float:
    return 1e-10 if kind == "float64" else 1e-4


# ------------------------------------------------------------------ spectra
STATISTICS: dict[str, Callable[[Any], Any]] = {
    "singular_values": si.singular_values,
    "spectral_entropy": si.spectral_entropy,
    "normalized_entropy": lambda a: si.spectral_entropy(a, normalized=True),
    "roy_vetterli_entropy": lambda a: si.spectral_entropy(a, convention="roy-vetterli"),
    "effective_rank": si.effective_rank,
    "stable_rank": si.stable_rank,
    "condition_number": si.condition_number,
    "typical_gain": si.typical_gain,
    "attribution_condition_number": si.attribution_condition_number,
}
SCALE_INVARIANT = set(STATISTICS) - {"singular_values", "typical_gain"}


def _check_range(name: str, value: np.ndarray, a: np.ndarray, tol: float, what: str) -> None:
    r = min(a.shape[-2:])
    assert not np.any(np.isnan(value)), f"{name} gave NaN for {what}"
    lo, hi = {
        "singular_values": (0.0, math.inf),
        "spectral_entropy": (0.0, math.log(r)),
        "normalized_entropy": (0.0, 1.0),
        "roy_vetterli_entropy": (0.0, math.log(r)),
        "effective_rank": (1.0, r),
        "stable_rank": (1.0, r),
        "condition_number": (1.0, math.inf),
        "typical_gain": (0.0, math.inf),
        "attribution_condition_number": (1.0, math.sqrt(r)),
    }[name]
    assert np.all(value >= lo - tol * max(1.0, abs(lo))), f"{name} = {value} < {lo}: {what}"
    assert np.all(value <= hi + tol * max(1.0, hi)), f"{name} = {value} > {hi}: {what}"


@_examples(1200)
@given(case=fuzz_arrays(), k=st.integers(-60, 60))
def test_spectra_functions(case, k):
    arr, kind, what = case
    for name, fn in STATISTICS.items():
        ok, value = call(name, fn, arr)
        if not ok:
            continue
        a = _np(arr)
        _check_range(name, _np(value), a, _tol(kind), what)
        representable = False
        if kind in FLOATS and np.all(np.isfinite(a)):
            # scaling by 2^k is exact while every entry stays a normal number of its dtype
            info = np.finfo(kind)
            with np.errstate(over="ignore"):
                mags = np.abs(a[a != 0]) * 2.0**k
            representable = bool(np.all((mags >= info.smallest_normal) & (mags <= info.max)))
            representable &= bool(np.all(np.abs(a[a != 0]) >= info.smallest_normal))
        if name in SCALE_INVARIANT and kind in FLOATS and _np(value).size and representable:
            ok2, value2 = call(name, fn, arr * (2.0**k))
            assert ok2, f"{name} failed on 2^{k} × {what}: {value2}"
            # κ compares as σ_r/σ_1, whose accuracy is absolute (about n·eps); every other
            # statistic is bounded by r, so its rounding is absolute too
            same = (lambda v: 1.0 / v) if name == "condition_number" else (lambda v: v)
            np.testing.assert_allclose(
                same(_np(value2)),
                same(_np(value)),
                rtol=_tol(kind),
                atol=10 * _tol(kind),
                err_msg=f"{name}: {what}, 2^{k}",
            )


@_examples(150)
@given(case=fuzz_arrays(min_ndim=0, max_ndim=2))
def test_spectrum_constructors(case):
    arr, _, what = case
    for name, fn in (
        ("from_singular_values", si.Spectrum.from_singular_values),
        ("from_eigenvalues", si.Spectrum.from_eigenvalues),
        ("hermitian_entropy", lambda a: si.spectral_entropy(a, hermitian=True)),
    ):
        ok, spec = call(name, fn, arr)
        if ok and isinstance(spec, si.Spectrum):
            ok, h = call(name + ".entropy", spec.entropy)
            if ok:
                assert np.all(np.isfinite(_np(h))) and np.all(_np(h) >= -1e-6), what


# ------------------------------------------------------------------ bounds
@_examples(150)
@given(case=fuzz_arrays(min_ndim=0, max_ndim=3), eps=st.sampled_from([1.0, 1e-3, 0.0, -1.0]))
def test_bounds_functions(case, eps):
    arr, kind, what = case
    for name, fn in (
        ("L1", bounds.stable_vs_effective_rank),
        ("L2", bounds.entropy_attribution_bound),
        ("T1", lambda a: bounds.typical_sensitivity(a, eps)),
    ):
        ok, ineq = call(name, fn, arr)
        if ok:
            assert ineq.holds(rtol=_tol(kind), atol=1e-300), f"{name} fails on {what}"
    ok, tail = call("T2", bounds.gaussian_sensitivity_tail, arr, eps, 1.0)
    if ok:
        lo, mean, hi = _np(tail.lower), _np(tail.mean), _np(tail.upper)
        assert np.all(np.isfinite(hi)) and np.all(lo <= mean) and np.all(mean <= hi), what


# ------------------------------------------------------------------ rmt
@_examples(150)
@given(
    case=fuzz_arrays(min_ndim=0, max_ndim=2),
    ratio=st.sampled_from([0.25, 1.0, 3.0, 0.0, -1.0, math.nan, math.inf]),
)
def test_rmt_functions(case, ratio):
    arr, _, what = case
    ok, law = call("MarchenkoPastur", rmt.MarchenkoPastur, ratio)
    law = law if ok else rmt.MarchenkoPastur(0.5)
    for name, fn in (
        ("mp.fit", lambda a: rmt.MarchenkoPastur.fit(a, 0.5)),
        ("mp.ks_distance", law.ks_distance),
        ("mp.spikes", law.spikes),
        ("weight_esd", rmt.weight_esd),
        ("layer_diagnostics", rmt.layer_diagnostics),
    ):
        ok, value = call(name, fn, arr)
        if ok and name == "mp.ks_distance":
            assert 0.0 <= value <= 1.0, what
    ok, value = call("bbp_outlier", rmt.bbp_outlier, ratio, 0.5)
    ok, value = call("mp.pdf", law.pdf, arr)
    if ok:
        assert np.all(_np(value) >= 0), what


# ------------------------------------------------------------------ linalg
@_examples(120)
@given(case=fuzz_arrays(min_ndim=0, max_ndim=3, square=True), k=st.integers(-1, 4))
def test_linalg_functions(case, k):
    arr, _, what = case
    ok, op = call("aslinearoperator", aslinearoperator, arr, symmetric=True)
    if not ok:
        return
    n = op.shape[0]
    for name, fn in (
        ("eigsh", lambda: si.linalg.eigsh(op, k, max_iter=20)),
        ("svds", lambda: si.linalg.svds(aslinearoperator(arr), k, max_iter=20)),
        ("trace", lambda: si.linalg.trace(op, num_matvecs=max(k, 0) * 4)),
        ("spectral_density", lambda: si.linalg.spectral_density(op, num_probes=2, num_steps=k)),
        ("randomized_svd", lambda: si.linalg.randomized_svd(op, k, oversample=2)),
        ("nystrom", lambda: si.linalg.nystrom(op, k, oversample=2)),
    ):
        ok, res = call(name, fn)
        if ok and name in ("eigsh", "svds", "randomized_svd", "nystrom"):
            values = _np(res.values)
            assert np.all(np.isfinite(values)) and values.size == k, f"{name}: {what}"
            dense = _np(arr)
            scale = np.max(np.abs(dense)) * n if dense.size else 0.0
            assert np.all(np.abs(values) <= scale * (1 + 1e-3) + 1e-300), f"{name}: {what}"
        elif ok and name == "trace":
            assert math.isfinite(res.estimate), what


@_examples(80)
@given(case=fuzz_arrays(min_ndim=1, max_ndim=2), other=st.sampled_from(BACKENDS))
def test_linalg_mixed_namespaces(case, other):
    arr = case[0]
    v0 = _convert(np.ones(4), other, "float64")
    v0 = _convert(np.ones(4), other, "float32") if v0 is None else v0
    dense = _convert(np.diag([4.0, 3.0, 2.0, 1.0]), "numpy", "float64")
    call("eigsh.v0", si.linalg.eigsh, dense, 1, v0=v0)
    ok, op = call("aslinearoperator", aslinearoperator, dense)
    if ok:
        call("matvec", op.matvec, arr)


# ------------------------------------------------------------------ model-level operators
def _mlp() -> Any:
    from specinterp.adapters import arraynet as an

    return si.as_model(an.init_mlp([3, 4, 2], seed=0))


@_examples(150)
@given(
    case=fuzz_arrays(min_ndim=0, max_ndim=3),
    labels=st.sampled_from([[0, 1], [0, 2], [-1, 0], [0.0, 1.0]]),
)
def test_model_operators(case, labels):
    arr, _, what = case
    model = _mlp()
    n = int(arr.shape[0]) if getattr(arr, "ndim", 0) >= 1 else 0
    y = np.resize(np.asarray(labels), n)
    for name, fn in (
        ("apply", lambda: model.apply(arr)),
        ("input_jacobian", lambda: si.input_jacobian(model, arr)),
        ("ntk", lambda: si.ntk(model, arr)),
        ("jacobian_spectra", lambda: si.jacobian_spectra(model, arr)),
        ("hessian_operator", lambda: si.hessian_operator(model, arr, y, "cross_entropy")),
        ("ggn", lambda: si.ggn(model, arr, y, "cross_entropy")),
        ("certified_radius", lambda: si.certified_radius(model, arr)),
        ("saliency", lambda: si.attribution.saliency(model, arr, 0)),
    ):
        ok, value = call(name, fn)
        if ok and name in ("input_jacobian", "ntk", "certified_radius"):
            v = _np(value)
            assert not np.any(np.isnan(v)), f"{name}: {what}"


# ------------------------------------------------------------------ the count
def test_call_budget():
    """The suite above made at least 10,000 calls (skipped when only part of it ran)."""
    if len(CALLS) < 40:
        pytest.skip("run the whole fuzz module to count its calls")
    assert sum(CALLS.values()) >= 10_000 * min(SCALE, 1.0)


def test_zero_matrix_is_the_documented_error():
    """A spot check of the harness itself: what it accepts is what the docs promise."""
    for name in ("spectral_entropy", "stable_rank"):
        ok, exc = call(name, STATISTICS[name], np.zeros((2, 2)))
        assert not ok and isinstance(exc, ZeroSpectrumError)
    try:
        np.linalg.cholesky(-np.eye(2))
    except np.linalg.LinAlgError as raw:
        with pytest.raises(AssertionError, match="raw"):
            _raised_on_purpose(raw, "spot")
