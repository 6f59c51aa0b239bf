"""arraynet's batch-last input pullbacks (the input-Jacobian pass of networks without a product
form) against torch autograd in float64, layer by layer and for a whole strided CNN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from specinterp.adapters import arraynet as an
from specinterp.adapters.arraynet.layer import Layer
from specinterp.adapters.arraynet.model import _stack_transposed

import specinterp as si
from specinterp import operators

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(0)


def _last(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 0, -1)


def _torch_pullback(fn, h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``(∂fn/∂h)ᵀ g`` by torch autograd, batch first."""
    ht = torch.tensor(h, requires_grad=True)
    (dh,) = torch.autograd.grad(fn(ht), ht, grad_outputs=torch.tensor(g))
    return dh.numpy()


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "stride", "padding", "size"),
    [
        (2, 3, 3, 1, 1, (6, 5)),
        (3, 4, 3, 2, 1, (7, 8)),
        (2, 2, 2, 2, 0, (6, 6)),
        (1, 3, 3, 3, 2, (5, 7)),
        (2, 2, 5, 3, 3, (4, 5)),  # taps whose first or last reads fall in the padding
        (1, 2, 2, 3, 2, (3, 3)),
    ],
)
def test_conv_pullback_is_torch_conv_adjoint(c_in, c_out, k, stride, padding, size):
    w = RNG.standard_normal((c_out, c_in, k, k))
    b = RNG.standard_normal(c_out)
    lay = an.Conv2d(w, b, stride=stride, padding=padding)
    h = RNG.standard_normal((5, c_in, *size))
    out, cache = lay.forward(h)
    g = RNG.standard_normal(out.shape)
    want = _torch_pullback(
        lambda t: F.conv2d(t, torch.tensor(w), torch.tensor(b), stride=stride, padding=padding),
        h,
        g,
    )
    got = lay.input_pullback(cache)(_last(g))
    assert got.shape == _last(want).shape
    np.testing.assert_allclose(got, _last(want), rtol=1e-12, atol=1e-12)
    # the batch-first adjoint (its own code path) agrees too
    np.testing.assert_allclose(lay.vjp_input(cache, g), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("layer", "fn", "shape"),
    [
        (an.Dense(RNG.standard_normal((4, 6)), None), None, (5, 6)),
        (an.Flatten(), lambda t: t.reshape(t.shape[0], -1), (5, 2, 3, 2)),
        (an.Tanh(), torch.tanh, (5, 2, 3, 2)),
        (an.ReLU(), torch.relu, (5, 7)),
        (an.GELU(), lambda t: F.gelu(t, approximate="tanh"), (5, 3, 4)),
    ],
    ids=["dense", "flatten", "tanh", "relu", "gelu"],
)
def test_layer_pullbacks_are_torch_adjoints(layer, fn, shape):
    if fn is None:  # Dense
        w = torch.tensor(layer.weight)
        fn = lambda t: t @ w.T  # noqa: E731
    h = RNG.standard_normal(shape)
    out, cache = layer.forward(h)
    g = RNG.standard_normal(out.shape)
    got = layer.input_pullback(cache)(_last(g))
    np.testing.assert_allclose(got, _last(_torch_pullback(fn, h, g)), rtol=1e-12, atol=1e-12)


@dataclass(frozen=True)
class _Cube(Layer):
    """A user layer implementing only the contract: ``h ↦ h³`` (no pullback of its own)."""

    def forward(self, h: Any) -> tuple[Any, Any]:
        return h**3, h

    def jvp(self, cache: Any, dh: Any, dp: Any) -> Any:
        return 3 * cache**2 * dh

    def vjp(self, cache: Any, g: Any, per_sample: bool = False) -> tuple[Any, list[Any]]:
        return 3 * cache**2 * g, []

    def vjp_input(self, cache: Any, g: Any) -> Any:
        return 3 * cache**2 * g

    def rvjp(self, cache: Any, g: Any, rg: Any, rh: Any, vp: Any) -> tuple[Any, list[Any]]:
        return 3 * cache**2 * rg + 6 * cache * rh * g, []


def test_default_pullback_of_a_user_layer():
    h = RNG.standard_normal((4, 3, 2))
    g = RNG.standard_normal((4, 3, 2))
    _, cache = _Cube().forward(h)
    want = _torch_pullback(lambda t: t**3, h, g)
    np.testing.assert_allclose(_Cube().input_pullback(cache)(_last(g)), _last(want), rtol=1e-12)


def test_strided_cnn_input_jacobian_is_torch_jacobian():
    """A CNN with stride-2 padded convolutions, a user layer and a dense head: the (N, C, d)
    input Jacobian equals torch's ``vmap(jacrev)`` and is row-major."""
    from torch.func import jacrev, vmap

    torch.manual_seed(0)
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 5, 3, stride=2, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(5 * 3 * 3, 7),
    ).double()
    anet = an.from_torch(tnet)
    anet = an.Sequential([*anet.layers[:4], _Cube(), *anet.layers[4:]])
    x = RNG.standard_normal((6, 3, 10, 9))

    def single(xi):
        z = tnet[:4](xi[None])
        return tnet[4:](z**3)[0]

    want = vmap(jacrev(single))(torch.tensor(x)).reshape(6, 7, -1).detach().numpy()
    got = operators.input_jacobian(si.as_model(anet), x)
    assert got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


def test_stack_transposed_in_uneven_blocks():
    rows = [RNG.standard_normal((11, 7)) for _ in range(3)]
    got = _stack_transposed(rows, block=4)
    np.testing.assert_array_equal(got, np.stack([r.T for r in rows], axis=1))
    assert got.flags.c_contiguous
