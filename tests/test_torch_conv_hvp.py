"""The layer-wise Hessian and GGN products of ``nn.Sequential`` convolutional stacks.

Convolutions are bilinear layers like ``Linear``: the same R-operator sweeps with a
correlation for ``A`` and its two adjoints (docs: theory, Hessian-vector products). Truth:
torch's dense float64 Hessian and GGN (``tests.torch_curvature``) and, in float32, torch's
own reverse-over-reverse product through the gradient graph.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from specinterp.adapters._torch_hvp import gradient_graph_hvp
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

import specinterp as si

from .torch_curvature import (
    LOSSES,
    assert_ggn_products,
    dense_hessian,
    products,
    targets,
)


def _conv2d_net(act: type[nn.Module]) -> nn.Sequential:
    """Stride, padding, dilation, groups, a layer without bias, two layers with no activation
    between them, and a flattening into a dense head."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        act(),
        nn.Conv2d(4, 4, 2, padding=(1, 0), dilation=(1, 2), groups=2, bias=False),
        nn.Conv2d(4, 2, 1),
        act(),
        nn.Flatten(),
        nn.Linear(2 * 5 * 2, 3),
    ).double()


def _x(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _assert_sweeps_are_the_dense_hessian(net, x, y, loss) -> None:
    """The model's HVP operator takes the layer-wise sweeps, and each of its products equals a
    column of torch's dense float64 Hessian."""
    model = si.as_model(net)
    hvp = model.hvp_operator(x, y, loss)
    assert hvp.__module__.endswith("_torch_sequential_hvp")  # not the gradient graph
    want = dense_hessian(net, [k for k, _ in net.named_parameters()], x, y, LOSSES[loss])
    np.testing.assert_allclose(products(hvp, model.num_params), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU, nn.SiLU])
def test_conv2d_stack_is_the_dense_hessian(act, loss):
    """Every product of the layer-wise route equals torch's dense Hessian (float64)."""
    net = _conv2d_net(act)
    x, y = _x((5, 2, 8, 8), 1), targets(loss, 5)
    _assert_sweeps_are_the_dense_hessian(net, x, y, loss)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_conv2d_stack_is_the_dense_ggn(loss):
    """The GGN sweeps and ``ggn_operator`` equal ``(1/N) Σ G_iᵀ Λ_i G_i`` (float64)."""
    net = _conv2d_net(nn.Tanh)
    x, y = _x((4, 2, 8, 8), 2), targets(loss, 4)
    assert_ggn_products(net, x, y, loss)


@pytest.mark.parametrize(
    "frozen", [["0.weight", "0.bias"], ["2.weight", "6.bias"], ["0.bias", "3.weight"]]
)
def test_conv_stack_over_the_trained_parameters_only(frozen):
    """A frozen first convolution, a frozen weight without its bias and the reverse: the
    Hessian over the differentiated parameters."""
    net = _conv2d_net(nn.Tanh)
    for name, p in net.named_parameters():
        p.requires_grad_(name not in frozen)
    x, y = _x((4, 2, 8, 8), 3), targets("cross_entropy", 4)
    model = si.as_model(net)
    hvp = model.hvp_operator(x, y, "cross_entropy")
    assert hvp.__module__.endswith("_torch_sequential_hvp")
    names = [k for k, _ in net.named_parameters() if k not in frozen]
    want = dense_hessian(net, names, x, y, LOSSES["cross_entropy"])
    np.testing.assert_allclose(products(hvp, model.num_params), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "cnn"])
def test_in_place_activations(conv):
    """``ReLU(inplace=True)`` / ``ELU(inplace=True)`` (common in VGG-style code) took the sweeps
    to an autograd error on a leaf; the products are the dense Hessian's."""
    torch.manual_seed(18)
    if conv:
        net = nn.Sequential(
            nn.Conv2d(2, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(3 * 6 * 6, 3)
        ).double()  # fmt: skip
        x = _x((4, 2, 8, 8), 19)
    else:
        net = nn.Sequential(nn.Linear(6, 5), nn.ELU(inplace=True), nn.Linear(5, 3)).double()
        x = _x((4, 6), 19)
    _assert_sweeps_are_the_dense_hessian(net, x, targets("cross_entropy", 4), "cross_entropy")


def test_nested_sequential_blocks_are_one_stack():
    """``Sequential(features, Flatten, classifier)``, the usual layout of a VGG-style network
    (dropout in evaluation mode in the classifier): the blocks are read as one stack (dotted
    parameter names) and the products are the dense Hessian's."""
    torch.manual_seed(13)
    features = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2))
    classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(3 * 3 * 3, 5), nn.Tanh(), nn.Dropout(0.5), nn.Linear(5, 3)
    )  # fmt: skip
    net = nn.Sequential(features, nn.Flatten(), classifier).double().eval()
    x, y = _x((4, 2, 8, 8), 14), targets("cross_entropy", 4)
    _assert_sweeps_are_the_dense_hessian(net, x, y, "cross_entropy")


def _with_statistics(net: nn.Sequential, seed: int) -> nn.Sequential:
    """``net`` in evaluation mode with random running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.data.copy_(torch.randn(m.num_features, generator=gen))
    return net.eval()


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_batch_normalisation_in_evaluation_mode_is_the_dense_hessian(loss):
    """Conv – BN – ReLU, a BN without ``γ, β``, a BN1d after a dense layer: each an affine map
    with running statistics and (when affine) a per-channel scale and shift, differentiated
    like any layer; products against torch's dense float64 Hessian and GGN."""
    torch.manual_seed(15)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 2, bias=False), nn.BatchNorm2d(4, affine=False), nn.Tanh(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 5), nn.BatchNorm1d(5), nn.SiLU(), nn.Linear(5, 3),
    ).double()  # fmt: skip
    net = _with_statistics(net, 16)
    x, y = _x((5, 2, 8, 8), 17), targets(loss, 5)
    _assert_sweeps_are_the_dense_hessian(net, x, y, loss)
    assert_ggn_products(net, x, y, loss)


@pytest.mark.parametrize("dim", [1, 3])
def test_conv1d_and_conv3d_stacks(dim):
    """One- and three-dimensional convolutions (stride, padding) take the same route."""
    conv = {1: nn.Conv1d, 3: nn.Conv3d}[dim]
    torch.manual_seed(4)
    size = {1: (7,), 3: (4, 3, 4)}[dim]
    net = nn.Sequential(
        conv(2, 3, 3, stride=2, padding=1), nn.GELU(), conv(3, 2, 2), nn.Flatten()
    ).double()
    x = _x((3, 2, *size), 5)
    width = int(net(x).shape[1])
    net.append(nn.Linear(width, 3).double())
    y = targets("cross_entropy", 3)
    _assert_sweeps_are_the_dense_hessian(net, x, y, "cross_entropy")


def _sweeps_and_graph(model, net, x, y):
    """The layer-wise cross-entropy HVP and torch's reverse-over-reverse one of the same loss."""
    hvp = model.hvp_operator(x, y, "cross_entropy")
    assert hvp.__module__.endswith("_torch_sequential_hvp")
    params = {k: v.detach() for k, v in net.named_parameters()}
    lf = torch.nn.functional.cross_entropy
    return hvp, gradient_graph_hvp(
        lambda p: lf(functional_call(net, p, (x,)), y), params, model.unflatten
    )


def test_float32_cnn_matches_the_gradient_graph():
    """The benchmark's CNN shape in float32 (channels-last kernels): each product equals torch's
    reverse-over-reverse product to float32 rounding, and ``eigsh`` gives the same top
    eigenvalues as on the gradient graph's operator."""
    torch.manual_seed(6)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10),
    )  # fmt: skip
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    model = si.as_model(net)
    hvp, ref = _sweeps_and_graph(model, net, x, y)
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        v = torch.randn(model.num_params, generator=gen)
        got, want = hvp(v), ref(v)
        assert float((got - want).norm() / want.norm()) < 1e-5
    op = si.hessian_operator(net, x, y, "cross_entropy")
    graph = si.linalg.LinearOperator(op.shape, ref, symmetric=True, dtype=op.dtype, xp=op.xp)
    vals = [si.linalg.eigsh(o, 3, tol=1e-4, seed=0).values.numpy() for o in (op, graph)]
    np.testing.assert_allclose(vals[0], vals[1], rtol=1e-4)


def _pooled_net(kind: str) -> nn.Sequential:
    """Pooling between the stages: max pooling with overlapping windows (an input may be the
    maximum of two windows), average pooling with padding, adaptive pooling, a 1-D max pool."""
    torch.manual_seed(11)
    if kind == "max-avg":
        return nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(3, 4, 2), nn.Tanh(), nn.AvgPool2d(2, padding=1, count_include_pad=False),
            nn.Flatten(), nn.Linear(4 * 2 * 2, 3),
        ).double()  # fmt: skip
    if kind == "adaptive":
        return nn.Sequential(
            nn.Conv2d(2, 3, 3), nn.GELU(), nn.AdaptiveMaxPool2d(3), nn.Conv2d(3, 3, 2),
            nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3),
        ).double()  # fmt: skip
    return nn.Sequential(
        nn.Conv1d(2, 3, 3), nn.Tanh(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(27, 3)
    ).double()  # fmt: skip


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("kind", ["max-avg", "adaptive", "max-1d"])
def test_pooling_between_stages_is_the_dense_hessian(kind, loss):
    """Pooling is linear (average) or piecewise linear (max) with no curvature of its own: the
    sweeps carry directions through its Jacobian at the batch and cotangents back through its
    transpose, and equal torch's dense float64 Hessian and GGN."""
    net = _pooled_net(kind)
    shape = (5, 2, 20) if kind == "max-1d" else (5, 2, 8, 8)
    x, y = _x(shape, 12), targets(loss, 5)
    _assert_sweeps_are_the_dense_hessian(net, x, y, loss)
    assert_ggn_products(net, x, y, loss)


@pytest.mark.parametrize(
    "net",
    [
        nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), nn.Flatten(), nn.Linear(32, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.Flatten(),
                      nn.Linear(32, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2, track_running_stats=False),
                      nn.Flatten(), nn.Linear(32, 2)),
        nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.LayerNorm(4), nn.Linear(4, 2)),
        nn.Sequential(nn.Flatten(), spectral_norm(nn.Linear(16, 4)), nn.Tanh(), nn.Linear(4, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 2), nn.Tanh()),
    ],
    ids=[
        "same-padding", "circular-padding", "batch-statistics", "layer-norm", "spectral-norm",
        "final-activation",
    ],
)  # fmt: skip
def test_other_stacks_keep_the_gradient_graph(net):
    """What the sweeps do not cover takes the gradient graph, and is right there too (a
    parametrised weight stopped the sweeps with an AttributeError)."""
    net = net.double().eval()
    x, y = _x((3, 1, 4, 4), 8), _x((3, 2), 9)
    model = si.as_model(net)
    hvp = model.hvp_operator(x, y, "mse")
    assert hvp.__module__.endswith("_torch_hvp")
    want = dense_hessian(net, [k for k, _ in net.named_parameters()], x, y, LOSSES["mse"])
    np.testing.assert_allclose(products(hvp, model.num_params), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(si.hessian(net, x, y, "mse").numpy(), want, atol=1e-12)


class _PlainWeightNorm(nn.Module):
    """``w = g v / ‖v‖`` (norm over all but the first axis) in plain tensor operations."""

    def forward(self, g, v):
        return g * v / v.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1)))

    def right_inverse(self, w):
        return w.flatten(1).norm(dim=1).view(-1, *([1] * (w.ndim - 1))), w


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
def test_torch_weight_norm_is_refused_for_hessians_and_a_plain_one_is_right(conv):
    """torch's ``weight_norm`` has a wrong double backward (its Hessian is not symmetric), so
    Hessian products are refused with the fix named, GGN products say that torch has no
    forward mode through it (they said to check the input's shape); the NTK still runs,
    and the same normalisation written as a plain parametrisation gives torch's dense Hessian,
    which is symmetric there."""
    torch.manual_seed(20)

    def fresh():
        return nn.Conv2d(1, 2, 3, padding=1) if conv else nn.Linear(16, 2)

    layer = fresh()
    head = [nn.Flatten(), nn.Linear(32, 2)] if conv else []
    x, y = _x((3, 1, 4, 4), 21), _x((3, 2), 22)
    net = nn.Sequential(*([] if conv else [nn.Flatten()]), weight_norm(layer), *head).double()
    for call in (
        lambda: si.linalg.eigsh(si.hessian_operator(net, x, y, "mse"), 2),
        lambda: si.hessian(net, x, y, "mse"),
        lambda: si.as_model(net).hvp(x, y, torch.ones(si.as_model(net).num_params).double(), "mse"),
    ):
        with pytest.raises(si.errors.ModelError, match=r"weight_norm.*plain"):
            call()
    ggn = si.ggn_operator(net, x, y, "mse")  # Jacobian-vector products: torch has none here
    with pytest.raises(si.errors.ModelError, match="no forward-mode"):
        ggn.matvec(torch.ones(ggn.shape[0], dtype=torch.float64))
    params = {k: v.detach() for k, v in net.named_parameters()}
    jac = torch.autograd.functional.jacobian(
        lambda *ps: functional_call(net, dict(zip(params, ps, strict=True)), (x,)),
        tuple(params.values()),
    )
    g = torch.cat([j.reshape(3 * 2, -1) for j in jac], dim=1)  # first derivatives are right
    np.testing.assert_allclose(si.ntk(net, x).numpy(), (g @ g.T).numpy(), rtol=1e-10)
    plain = fresh().double()
    parametrize.register_parametrization(plain, "weight", _PlainWeightNorm(), unsafe=True)
    net = nn.Sequential(*([] if conv else [nn.Flatten()]), plain, *head).double()
    want = dense_hessian(net, [k for k, _ in net.named_parameters()], x, y, LOSSES["mse"])
    np.testing.assert_allclose(want, want.T, atol=1e-12)
    model = si.as_model(net)
    got = products(model.hvp_operator(x, y, "mse"), model.num_params)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch has no CUDA device here")
def test_cnn_products_stay_on_the_gpu():
    """On a CUDA device every buffer of the sweeps is made there: the products equal the
    gradient graph's (float64) and come back on the device."""
    net = _conv2d_net(nn.Tanh).cuda()
    x, y = _x((4, 2, 8, 8), 10).cuda(), targets("cross_entropy", 4).cuda()
    model = si.as_model(net)
    hvp, ref = _sweeps_and_graph(model, net, x, y)
    v = torch.randn(model.num_params, dtype=torch.float64, device="cuda")
    got = hvp(v)
    assert got.device == v.device
    torch.testing.assert_close(got, ref(v), rtol=1e-10, atol=1e-12)
