"""The layer-wise R-operator HVP of an ``nn.Sequential`` MLP equals the loss Hessian.

Truth: the dense Hessian of the mean loss as a function of the flat differentiated parameters
from ``torch.autograd.functional.hessian`` (float64), and, for each product, torch's own
reverse-over-reverse product through the gradient graph (the route every other model takes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from specinterp.adapters._torch_hvp import gradient_graph_hvp
from specinterp.adapters._torch_sequential_hvp import span_basis
from torch.func import functional_call

import specinterp as si

from .torch_curvature import (
    LOSSES,
    assert_ggn_products,
    dense_ggn,
    dense_hessian,
    products,
    targets,
)


def _net(act: type[torch.nn.Module], bias_middle: bool = True) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(6, 5),
        act(),
        torch.nn.Linear(5, 4, bias=bias_middle),
        act(),
        torch.nn.Linear(4, 3),
    ).double()


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("act", [torch.nn.Tanh, torch.nn.ReLU, torch.nn.GELU, torch.nn.Softplus])
def test_r_operator_is_the_dense_hessian(act, loss):
    """Smooth activations exercise the ``φ''`` term, ReLU the piecewise-linear case (its second
    derivative 0, as autograd takes it); no-bias middle layer; three losses."""
    net = _net(act, bias_middle=act is not torch.nn.ReLU)
    x = torch.randn(7, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = targets(loss, 7)
    model = si.as_model(net)
    hvp = model.hvp_operator(x, y, loss)
    assert hvp.__module__.endswith("_torch_sequential_hvp")  # the layer-wise route, not the graph
    names = [k for k, _ in net.named_parameters()]
    want = dense_hessian(net, names, x, y, LOSSES[loss])
    np.testing.assert_allclose(products(hvp, model.num_params), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "frozen", [["1.weight", "1.bias"], ["3.bias", "5.weight"], ["1.weight", "3.weight", "5.bias"]]
)
def test_r_operator_over_the_trained_parameters_only(frozen):
    """A partly frozen MLP (whole layers, a weight without its bias, a bias without its weight)
    keeps the layer-wise route and gives the Hessian over the differentiated parameters."""
    net = _net(torch.nn.Tanh)
    for name, p in net.named_parameters():
        p.requires_grad_(name not in frozen)
    x = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = targets("cross_entropy", 6)
    model = si.as_model(net)
    hvp = model.hvp_operator(x, y, "cross_entropy")
    assert hvp.__module__.endswith("_torch_sequential_hvp")
    names = [k for k, _ in net.named_parameters() if k not in frozen]
    want = dense_hessian(net, names, x, y, torch.nn.functional.cross_entropy)
    np.testing.assert_allclose(products(hvp, model.num_params), want, rtol=1e-10, atol=1e-12)


def test_r_operator_in_the_order_of_param_names():
    """``param_names=`` in an order of its own: the flat vector follows it."""
    net = _net(torch.nn.Tanh)
    names = ["5.bias", "1.weight", "3.weight"]
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y = targets("mse", 5)
    model = si.as_model(net, param_names=names)
    hvp = model.hvp_operator(x, y, "mse")
    want = dense_hessian(net, list(model.params), x, y, LOSSES["mse"])
    np.testing.assert_allclose(products(hvp, model.num_params), want, rtol=1e-10, atol=1e-12)


def test_r_operator_with_a_user_loss_and_float32():
    """A loss callable (its ``Λ`` products by autograd) in float32 matches torch's own
    reverse-over-reverse product to float32 rounding, product after product."""
    torch.manual_seed(5)
    net = torch.nn.Sequential(
        torch.nn.Linear(20, 16), torch.nn.SiLU(), torch.nn.Linear(16, 5)
    )  # fmt: skip
    x, y = torch.randn(32, 20), torch.randn(32, 5)

    def huber(z, t):
        return torch.nn.functional.huber_loss(z, t, reduction="none").sum(1)

    model = si.as_model(net)
    hvp = model.hvp_operator(x, y, huber)
    assert hvp.__module__.endswith("_torch_sequential_hvp")
    params = {k: v.detach() for k, v in net.named_parameters()}
    ref = gradient_graph_hvp(
        lambda p: huber(functional_call(net, p, (x,)), y).mean(), params, model.unflatten
    )
    gen = torch.Generator().manual_seed(6)
    for _ in range(3):
        v = torch.randn(model.num_params, generator=gen)
        got, want = hvp(v), ref(v)
        assert float((got - want).norm() / want.norm()) < 1e-5


def test_other_modules_keep_the_gradient_graph():
    """A residual or convolutional model is not a dense stack: the gradient-graph route."""
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten())
    net = net.double()
    x = torch.randn(4, 1, 6, dtype=torch.float64)
    hvp = si.as_model(net).hvp_operator(x, torch.randn(4, 8, dtype=torch.float64), "mse")
    assert hvp.__module__.endswith("_torch_hvp")


def _wide_net() -> torch.nn.Sequential:
    torch.manual_seed(8)
    return torch.nn.Sequential(
        torch.nn.Linear(9, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)
    ).double()  # fmt: skip


def test_first_layer_compression_is_the_hessian_on_the_input_span():
    """Four samples of nine inputs: ``H = L H̃ Lᵀ`` with ``L`` orthonormal, ``H`` zero on the
    complement of its range, which has ``5 · (9 − 4)`` fewer dimensions. Truth: torch's dense
    Hessian."""
    net = _wide_net()
    x = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    y = targets("cross_entropy", 4)
    model = si.as_model(net)
    mv, m, lift, restrict = model.compressed_curvature(x, y, "cross_entropy")
    p = model.num_params
    assert m == p - 5 * (9 - 4)
    lmat = torch.stack([lift(torch.eye(m, dtype=torch.float64)[j]) for j in range(m)], dim=1)
    np.testing.assert_allclose((lmat.T @ lmat).numpy(), np.eye(m), atol=1e-13)
    v = torch.randn(p, dtype=torch.float64)
    np.testing.assert_allclose(restrict(v).numpy(), (lmat.T @ v).numpy(), atol=1e-13)
    h = dense_hessian(net, [k for k, _ in net.named_parameters()], x, y, LOSSES["cross_entropy"])
    h_small = products(mv, m)
    np.testing.assert_allclose(lmat.numpy() @ h_small @ lmat.numpy().T, h, atol=1e-12)
    complement = np.eye(p) - lmat.numpy() @ lmat.numpy().T
    np.testing.assert_allclose(h @ complement, 0, atol=1e-12)


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_eigsh_through_the_compression(which):
    """``eigsh`` of the Hessian operator works on ``H̃``; values and vectors are ``H``'s
    (dense ``eigh`` of torch's Hessian), for the largest and the smallest."""
    net = _wide_net()
    x = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    y = targets("cross_entropy", 4)
    op = si.hessian_operator(net, x, y, "cross_entropy")
    small = op.compression().operator
    calls, product = [], small._matvec
    small._matvec = lambda v: calls.append(1) or product(v)  # every product is H̃'s
    h = dense_hessian(net, [k for k, _ in net.named_parameters()], x, y, LOSSES["cross_entropy"])
    exact = np.linalg.eigvalsh(h)
    res = si.linalg.eigsh(op, 3, which=which, tol=1e-10, return_vectors=True)
    assert len(calls) == res.num_matvecs > 0
    want = exact[::-1][:3] if which == "LA" else exact[:3]
    np.testing.assert_allclose(res.values.numpy(), want, rtol=1e-8, atol=1e-12)
    vecs = res.vectors.numpy()
    assert vecs.shape == (op.shape[0], 3)
    np.testing.assert_allclose(h @ vecs, vecs * res.values.numpy(), atol=1e-8)


def test_eigsh_needs_the_null_space_zeros():
    """Asking for more of the top than ``H̃`` has positive eigenvalues: ``H``'s zeros belong to
    the answer, and ``eigsh`` gives them (dense ``eigvalsh`` of torch's Hessian)."""
    net = _wide_net()
    x = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    y = targets("cross_entropy", 4)
    op = si.hessian_operator(net, x, y, "cross_entropy")
    m = op.compression().operator.shape[0]
    h = dense_hessian(net, [k for k, _ in net.named_parameters()], x, y, LOSSES["cross_entropy"])
    exact = np.linalg.eigvalsh(h)[::-1]
    k = int(np.sum(exact > 1e-9)) + 2  # two zeros wanted
    assert k < m
    res = si.linalg.eigsh(op, k, tol=1e-10)
    np.testing.assert_allclose(res.values.numpy(), exact[:k], atol=1e-9)


def test_compression_of_an_mlp_with_dropout_and_batch_normalisation():
    """Dropout on the inputs and after the first layer, a BatchNorm1d (evaluation mode, running
    statistics): the first layer still sees the inputs, so ``H = L H̃ Lᵀ`` with ``5 · (9 − 4)``
    fewer coordinates, and ``eigsh`` through it gives torch's dense Hessian's top eigenvalues."""
    torch.manual_seed(16)
    net = torch.nn.Sequential(
        torch.nn.Dropout(0.2), torch.nn.Linear(9, 5), torch.nn.BatchNorm1d(5), torch.nn.Tanh(),
        torch.nn.Dropout(0.5), torch.nn.Linear(5, 3),
    ).double()  # fmt: skip
    net[2].running_mean.copy_(torch.randn(5))
    net[2].running_var.copy_(torch.rand(5) + 0.5)
    net.eval()
    x = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(17))
    y = targets("cross_entropy", 4)
    model = si.as_model(net)
    mv, m, lift, _ = model.compressed_curvature(x, y, "cross_entropy")
    assert m == model.num_params - 5 * (9 - 4)
    lmat = torch.stack([lift(torch.eye(m, dtype=torch.float64)[j]) for j in range(m)], dim=1)
    h = dense_hessian(net, [k for k, _ in net.named_parameters()], x, y, LOSSES["cross_entropy"])
    np.testing.assert_allclose(lmat.numpy() @ products(mv, m) @ lmat.numpy().T, h, atol=1e-12)
    res = si.linalg.eigsh(si.hessian_operator(net, x, y, "cross_entropy"), 3, tol=1e-10)
    np.testing.assert_allclose(res.values.numpy(), np.linalg.eigvalsh(h)[::-1][:3], rtol=1e-8)


def test_no_compression_where_it_does_not_apply():
    """A frozen first layer, or a batch with as many samples as inputs: no compression."""
    net = _wide_net()
    y = targets("mse", 9)
    x = torch.randn(9, 9, dtype=torch.float64)
    assert si.hessian_operator(net, x, y, "mse").compression() is None
    net[0].weight.requires_grad_(False)
    assert si.hessian_operator(net, x[:4], y[:4], "mse").compression() is None


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("act", [torch.nn.Tanh, torch.nn.ReLU, torch.nn.GELU])
def test_layerwise_ggn_is_the_dense_ggn(act, loss):
    """The GGN sweeps (the R-operator without the loss-gradient terms) of the adapter, and the
    ``ggn_operator`` built on them, against the dense ``(1/N) Σ G_iᵀ Λ_i G_i``."""
    net = _net(act)
    x = torch.randn(6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    y = targets(loss, 6)
    assert_ggn_products(net, x, y, loss)


def test_ggn_compression_and_eigsh():
    """A frozen last bias, four samples of nine inputs: the GGN's compression satisfies
    ``GGN = L G̃ Lᵀ``, and ``eigsh`` of ``ggn_operator`` (every product the compression's) gives
    the dense GGN's top eigenvalues and eigenvectors."""
    net = _wide_net()
    net[2].bias.requires_grad_(False)
    x = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    y = targets("cross_entropy", 4)
    names = [k for k, p in net.named_parameters() if p.requires_grad]
    want = dense_ggn(net, names, x, y, "cross_entropy")
    op = si.ggn_operator(net, x, y, "cross_entropy")
    comp = op.compression()
    m = comp.operator.shape[0]
    assert m == op.shape[0] - 5 * (9 - 4) and comp.operator.positive_semidefinite
    lmat = torch.stack([comp.lift(torch.eye(m, dtype=torch.float64)[j]) for j in range(m)], 1)
    np.testing.assert_allclose(
        lmat.numpy() @ products(comp.operator.matvec, m) @ lmat.numpy().T, want, atol=1e-12
    )
    calls, product = [], comp.operator._matvec
    comp.operator._matvec = lambda v: calls.append(1) or product(v)
    res = si.linalg.eigsh(op, 3, tol=1e-10, return_vectors=True)
    assert len(calls) == res.num_matvecs > 0
    np.testing.assert_allclose(res.values.numpy(), np.linalg.eigvalsh(want)[::-1][:3], rtol=1e-8)
    vecs = res.vectors.numpy()
    np.testing.assert_allclose(want @ vecs, vecs * res.values.numpy(), atol=1e-9)


def test_spectral_density_through_the_compression():
    """SLQ of a compressible Hessian runs on ``H̃`` and adds the zeros' exact atom: each rule
    ends in the node 0 of weight ``1 − m/p``; the rules' second moment and trace estimate
    ``‖H‖_F²`` and ``tr H`` of torch's dense Hessian within five standard errors."""
    net = _wide_net()
    x = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(14))
    y = targets("cross_entropy", 4)
    op = si.hessian_operator(net, x, y, "cross_entropy")
    small = op.compression().operator
    p, m = op.shape[0], small.shape[0]
    calls, product = [], small._matvec
    small._matvec = lambda v: calls.append(1) or product(v)
    dens = si.linalg.spectral_density(op, num_probes=300, num_steps=m, seed=1)
    assert len(calls) == dens.num_matvecs > 0  # each run may end early (an exact rule)
    np.testing.assert_array_equal(dens.nodes[:, -1], 0.0)
    np.testing.assert_allclose(dens.weights[:, -1], 1 - m / p, rtol=1e-14)
    np.testing.assert_allclose(dens.weights.sum(axis=1), 1.0, rtol=1e-12)
    h = dense_hessian(net, [k for k, _ in net.named_parameters()], x, y, LOSSES["cross_entropy"])
    lam = np.linalg.eigvalsh(h)
    for power in (1, 2):
        per_probe = p * np.sum(dens.weights * dens.nodes**power, axis=1)
        err = np.std(per_probe, ddof=1) / np.sqrt(len(per_probe))
        assert abs(per_probe.mean() - np.sum(lam**power)) < 5 * err


def test_compression_with_the_first_weight_not_leading():
    """``param_names`` that put the first weight after another block: the lift and restriction
    change that block where it lies (``H = L H̃ Lᵀ`` against torch's dense Hessian)."""
    net = _wide_net()
    names = ["2.bias", "0.weight", "2.weight"]
    x = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(15))
    y = targets("cross_entropy", 4)
    model = si.as_model(net, param_names=names)
    mv, m, lift, restrict = model.compressed_curvature(x, y, "cross_entropy")
    assert m == model.num_params - 5 * (9 - 4)
    lmat = torch.stack([lift(torch.eye(m, dtype=torch.float64)[j]) for j in range(m)], dim=1)
    v = torch.randn(model.num_params, dtype=torch.float64)
    np.testing.assert_allclose(restrict(v).numpy(), (lmat.T @ v).numpy(), atol=1e-13)
    h = dense_hessian(net, names, x, y, LOSSES["cross_entropy"])
    np.testing.assert_allclose(lmat.numpy() @ products(mv, m) @ lmat.numpy().T, h, atol=1e-12)


def _conditioned(kappa: float, d: int = 200, n: int = 60, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((d, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return torch.tensor((u * np.geomspace(1.0, 1.0 / kappa, n)) @ v.T, dtype=torch.float32)


@pytest.mark.parametrize(
    "case", ["well conditioned", "κ = 1e5 (Cholesky fails)", "repeated samples (rank deficient)"]
)
def test_span_basis_is_orthonormal_and_holds_every_input(case):
    a = _conditioned(10.0 if case == "well conditioned" else 1e5)
    if case.startswith("repeated"):
        a[:, 30:] = a[:, :30]  # the batch holds every sample twice
    q = span_basis(a)
    eps = float(torch.finfo(torch.float32).eps)
    assert q.shape == a.shape
    # orthonormal columns, and every input column in their span, to float32 rounding
    assert float((q.T @ q - torch.eye(a.shape[1])).abs().max()) <= 20 * eps
    assert float((a - q @ (q.T @ a)).norm() / a.norm()) <= 20 * eps
    if case == "well conditioned":  # the same subspace as Householder QR's
        h = torch.linalg.qr(a)[0]
        assert float((q @ q.T - h @ h.T).abs().max()) <= 50 * eps
