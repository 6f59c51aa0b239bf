"""arraynet's batch-last input pullbacks (the input-Jacobian pass of networks without a product
form) against torch autograd in float64, layer by layer and for a whole strided CNN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from specinterp.adapters import arraynet as an
from specinterp.adapters.arraynet.jacobian_layout import r_factors, stack_transposed
from specinterp.adapters.arraynet.layer import Layer

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
        # sizes the stride divides: the image is filled by residue classes of rows and columns
        (3, 4, 3, 2, 1, (8, 6)),  # the benchmark CNNs' geometry: 4 assignments, 5 additions
        (2, 3, 5, 3, 1, (6, 9)),
        (2, 2, 3, 2, 2, (4, 6)),  # no tap covers a class whole: zeroed, then added
        (2, 3, 1, 2, 0, (6, 4)),  # kernel below the stride: odd rows and columns read nothing
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
    got = stack_transposed(rows, block=4)
    np.testing.assert_array_equal(got, np.stack([r.T for r in rows], axis=1))
    assert got.flags.c_contiguous


def test_r_factors_in_uneven_chunks_are_the_qr_of_each_jacobian():
    """``R_i`` from ``J_iᵀ = Q_i R_i``: ``R_iᵀ R_i = J_i J_iᵀ`` and ``σ(R_i) = σ(J_i)``."""
    rows = [RNG.standard_normal((40, 11)) for _ in range(3)]  # d = 40, N = 11, C = 3
    jac = np.stack([r.T for r in rows], axis=1)  # (N, C, d)
    r = r_factors(rows, chunk=4)
    assert r.shape == (11, 3, 3)
    np.testing.assert_allclose(np.triu(r), r, atol=0)  # upper triangular
    gram = jac @ np.swapaxes(jac, -1, -2)
    np.testing.assert_allclose(np.swapaxes(r, -1, -2) @ r, gram, rtol=1e-12)
    np.testing.assert_allclose(
        np.linalg.svd(r, compute_uv=False), np.linalg.svd(jac, compute_uv=False), rtol=1e-12
    )


def test_cnn_jacobian_spectra_through_r_factors_are_torch_spectra():
    """An arraynet CNN hands ``jacobian_spectra`` the ``C × C`` factors; every statistic equals
    the one from torch's ``vmap(jacrev)`` Jacobian (float64 SVD of each ``J_i``)."""
    from torch.func import jacrev, vmap

    from .reference import stats

    torch.manual_seed(1)
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 5 * 4, 6),
    ).double()
    x = RNG.standard_normal((9, 3, 10, 8))
    model = si.as_model(an.from_torch(tnet))
    b = model.input_jacobian_factor(x)
    assert b.shape == (9, 6, 6)  # C × C, not C × d
    jac = vmap(jacrev(lambda xi: tnet(xi[None])[0]))(torch.tensor(x))
    want = jac.reshape(9, 6, -1).detach().numpy()
    js = si.jacobian_spectra(model, x)
    np.testing.assert_allclose(
        js.singular_values, np.linalg.svd(want, compute_uv=False), rtol=1e-11, atol=1e-13
    )
    for name in ("entropy", "stable_rank", "condition_number", "effective_rank"):
        np.testing.assert_allclose(getattr(js, name), [stats(j)[name] for j in want], rtol=1e-9)


@pytest.mark.parametrize("bias", [True, False])
def test_mlp_param_jacobian_by_dense_blocks_is_torch_jacobian(bias):
    """``∂f_a/∂W_l = B_l[a] ⊗ h_{l−1}``, ``∂f_a/∂b_l = B_l[a]`` written in place by each dense
    layer for all outputs equals torch's ``vmap(jacrev)`` parameter Jacobian, in the network's
    parameter order."""
    from specinterp.adapters.arraynet import param_jacobian as routes
    from torch.func import functional_call, jacrev, vmap

    torch.manual_seed(2)
    tnet = torch.nn.Sequential(
        torch.nn.Linear(7, 6, bias=bias),
        torch.nn.Tanh(),
        torch.nn.Linear(6, 5, bias=bias),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 4, bias=bias),
    ).double()
    x = RNG.standard_normal((8, 7))
    params = {k: v.detach() for k, v in tnet.named_parameters()}
    jac = vmap(jacrev(lambda p, xi: functional_call(tnet, p, (xi[None],))[0]), in_dims=(None, 0))(
        params, torch.tensor(x)
    )
    want = torch.cat([j.reshape(8, 4, -1) for j in jac.values()], dim=2).numpy()
    model = si.as_model(an.from_torch(tnet))
    z, caches = model._forward(x)
    np.testing.assert_allclose(routes.by_pullbacks(model, z, caches), want, rtol=1e-12, atol=1e-13)
    got = operators.param_jacobian(model, x)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@dataclass(frozen=True)
class _Scale(Layer):
    """A user layer with a parameter and no ``param_jacobian_block``: ``out = s ⊙ h``."""

    s: Any

    @property
    def params(self) -> tuple[Any, ...]:
        return (self.s,)

    def with_params(self, params: list[Any]) -> _Scale:
        return _Scale(params[0])

    def forward(self, h: Any) -> tuple[Any, Any]:
        return self.s * h, h

    def jvp(self, cache: Any, dh: Any, dp: Any) -> Any:
        out = self.s * dh
        return out if dp is None else out + dp[0] * cache

    def vjp(self, cache: Any, g: Any, per_sample: bool = False) -> tuple[Any, list[Any]]:
        per = g * cache
        return self.s * g, [per if per_sample else per.sum(axis=0)]

    def vjp_input(self, cache: Any, g: Any) -> Any:
        return self.s * g

    def rvjp(self, cache: Any, g: Any, rg: Any, rh: Any, vp: Any) -> tuple[Any, list[Any]]:
        return self.s * rg + vp[0] * g, [(rg * cache + g * rh).sum(axis=0)]


def test_cnn_param_jacobian_for_all_outputs_at_once_is_torch_jacobian():
    """Each layer's per-sample gradients for all C outputs at once (a convolution's as one
    batched product) equal torch's ``vmap(jacrev)`` parameter Jacobian; a user layer with a
    parameter goes through the default block and agrees with the per-output backward passes."""
    from specinterp.adapters.arraynet import param_jacobian as routes
    from torch.func import functional_call, jacrev, vmap

    torch.manual_seed(3)
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(3, 4, 2, bias=False),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 3 * 2, 5),
    ).double()
    x = RNG.standard_normal((7, 2, 8, 6))
    params = {k: v.detach() for k, v in tnet.named_parameters()}
    jac = vmap(jacrev(lambda p, xi: functional_call(tnet, p, (xi[None],))[0]), in_dims=(None, 0))(
        params, torch.tensor(x)
    )
    want = torch.cat([j.reshape(7, 5, -1) for j in jac.values()], dim=2).numpy()
    model = si.as_model(an.from_torch(tnet))
    np.testing.assert_allclose(operators.param_jacobian(model, x), want, rtol=1e-12, atol=1e-13)

    layers = an.from_torch(tnet).layers
    user = an.Sequential([*layers[:2], _Scale(RNG.standard_normal((3, 4, 3))), *layers[2:]])
    model = si.as_model(user)
    z, caches = model._forward(x)
    got = routes.by_pullbacks(model, z, caches)
    np.testing.assert_allclose(got, routes.by_passes(model, z, caches), rtol=1e-12, atol=1e-13)
