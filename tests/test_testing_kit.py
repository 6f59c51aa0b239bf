"""The public testing kit, including the docs example verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from specinterp.adapters import arraynet as an

import specinterp as si
from specinterp.testing import assert_bounds_hold
from specinterp.testing.strategies import arraynet_mlps, jax_mlps, torch_cnns, torch_mlps

torch = pytest.importorskip("torch")

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"


@pytest.fixture(autouse=True)
def _jax_float64():
    """The JAX strategies build float64 parameters only with x64 on (test setup, not library)."""
    try:
        import jax
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)


def test_docs_example_runs_as_written():
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 20
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    namespace["test_gated_network_obeys_the_framework"]()


@settings(max_examples=15)
@given(case=arraynet_mlps())
def test_arraynet_networks(case):
    checked = assert_bounds_hold(case.net, case.x)
    assert {"T1", "T3", "T5", "T6", "T7"} <= set(checked)


@settings(max_examples=10)
@given(case=torch_mlps())
def test_torch_networks(case):
    net, x = case
    assert {"T1", "T5", "T6", "T7"} <= set(assert_bounds_hold(net, x))


@settings(max_examples=8)
@given(case=torch_cnns())
def test_torch_cnns(case):
    net, x = case
    assert {"T1", "T5", "T6", "T7"} <= set(assert_bounds_hold(net, x))


@settings(max_examples=4)  # each new JAX shape compiles ~120 programs (5 s on 2 cores)
@given(case=jax_mlps())
def test_jax_mlps(case):
    pytest.importorskip("jax")
    fn, params, x = case
    assert {"T1", "T5", "T6", "T7"} <= set(assert_bounds_hold(si.as_model(fn, params), x))


def test_violations_are_reported(monkeypatch):
    net = an.init_mlp([3, 4, 2], seed=0)
    x = np.random.default_rng(0).standard_normal((3, 3))
    real = si.testing.assertions.ntk

    def broken(model, x1, *a, **k):
        return 2.0 * real(model, x1, *a, **k)  # a wrong NTK must trip T5

    monkeypatch.setattr(si.testing.assertions, "ntk", broken)
    with pytest.raises(AssertionError, match="T5 violated"):
        assert_bounds_hold(net, x)


def test_bounds_on_token_models_are_checked_on_their_embeddings():
    """A classifier and a per-token LM on token ids (T1 with respect to the embeddings, T7's
    labels along the class axis of ``(N, T, V)`` outputs); before, the first stopped in the
    product-form lookup on integer inputs and the second in T7's target shape."""
    torch = pytest.importorskip("torch")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from .lm_models import BagOfTokens, gpt2

    assert set(assert_bounds_hold(BagOfTokens(), torch.randint(0, 7, (3, 4)))) == {
        "T1", "T5", "T6", "T7",
    }  # fmt: skip
    with sdpa_kernel(SDPBackend.MATH):  # second derivatives through attention
        checked = assert_bounds_hold(gpt2(), torch.randint(0, 16, (2, 3)))
    assert set(checked) == {"T1", "T5", "T6", "T7"}
