"""Losses against torch's own implementations and autodiff: values, gradients, ``Λ`` products.

Every built-in loss is compared with ``torch.nn.functional`` (value) and with ``torch.func``
derivatives of that reference (output gradient and ``Λ dz``); the per-token cross-entropy with
``ignore_index`` with ``F.cross_entropy(..., ignore_index=...)``. A user callable that
reimplements a built-in gives the same Hessian and GGN of a model.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import specinterp as si  # noqa: E402
from specinterp import losses  # noqa: E402
from specinterp.errors import DTypeError, LabelError, ModelError, ShapeError  # noqa: E402


def _rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _reference_derivatives(ref, z, dz):
    """Gradient of ``N·L_ref`` and ``∇²(N·L_ref) dz`` by torch.func (``L = mean ℓ_i``)."""
    n = z.shape[0]
    g = torch.func.grad(lambda zz: n * ref(zz))(z)
    h = torch.func.jvp(torch.func.grad(lambda zz: n * ref(zz)), (z,), (dz,))[1]
    return g, h


@pytest.mark.parametrize("ignore", [None, -100])
def test_token_cross_entropy_matches_torch(ignore):
    g = _rng()
    z = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 7, (3, 5), generator=g)
    if ignore is not None:
        y[0, :3] = ignore
        y[2, 4] = ignore
    loss = losses.cross_entropy(ignore_index=ignore)

    def ref(zz):
        kw = {} if ignore is None else {"ignore_index": ignore}
        return F.cross_entropy(zz.reshape(-1, 7), y.reshape(-1), **kw)

    assert torch.allclose(loss.value(z, y), ref(z), rtol=1e-14, atol=0)
    dz = torch.randn(z.shape, generator=g, dtype=torch.float64)
    grad_ref, hvp_ref = _reference_derivatives(ref, z, dz)
    torch.testing.assert_close(loss.gradient(z, y), grad_ref, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(loss.apply_hessian(z, y, dz), hvp_ref, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(loss.hessian_at(z, y)(dz), hvp_ref, rtol=1e-13, atol=1e-15)
    # the dense Λ over the flattened outputs is block-diagonal in tokens with the same products
    lam = loss.hessian(z, y)
    assert lam.shape == (3, 35, 35)
    torch.testing.assert_close(
        torch.einsum("ncd,nd->nc", lam, dz.reshape(3, -1)), hvp_ref.reshape(3, -1)
    )


def test_classifier_cross_entropy_is_the_token_loss_with_one_token():
    g = _rng()
    z = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    assert torch.allclose(losses.loss_value(z, y, "cross_entropy"), F.cross_entropy(z, y))
    lam = losses.output_hessian(z, y, "cross_entropy")
    p = torch.softmax(z, -1)
    torch.testing.assert_close(lam, torch.diag_embed(p) - p[:, :, None] * p[:, None, :])


def test_mse_any_shape_and_bce_with_logits_match_torch():
    g = _rng()
    for shape in [(5,), (5, 3), (5, 2, 3)]:
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        y = torch.randn(shape, generator=g, dtype=torch.float64)
        assert torch.allclose(
            losses.loss_value(z, y, "mse"), 0.5 * F.mse_loss(z, y, reduction="sum") / 5
        )
        t = torch.rand(shape, generator=g, dtype=torch.float64)
        bce = losses.bce_with_logits()

        def ref(zz, t=t):
            return F.binary_cross_entropy_with_logits(zz, t, reduction="sum") / 5

        assert torch.allclose(bce.value(z, t), ref(z), rtol=1e-14, atol=0)
        dz = torch.randn(shape, generator=g, dtype=torch.float64)
        grad_ref, hvp_ref = _reference_derivatives(ref, z, dz)
        torch.testing.assert_close(bce.gradient(z, t), grad_ref)
        torch.testing.assert_close(bce.apply_hessian(z, t, dz), hvp_ref)
        torch.testing.assert_close(bce.hessian_at(z, t)(dz), hvp_ref)
        mse_ref = _reference_derivatives(lambda zz, y=y: 0.5 * ((zz - y) ** 2).sum() / 5, z, dz)
        torch.testing.assert_close(losses.mse().hessian_at(z, y)(dz), mse_ref[1])
    # large logits: the stable softplus does not overflow
    z = torch.tensor([[800.0, -800.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert float(losses.bce_with_logits().value(z, t)) == 0.0


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    ).double()


def test_callable_loss_gives_the_builtin_hessian_and_ggn():
    net = _mlp()
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))

    def my_ce(z, t):
        return torch.logsumexp(z, -1) - z.gather(1, t[:, None])[:, 0]

    h_builtin = si.hessian(net, x, y, "cross_entropy")
    h_callable = si.hessian(net, x, y, my_ce)
    torch.testing.assert_close(h_callable, h_builtin, rtol=1e-12, atol=1e-14)
    g_builtin = si.ggn(net, x, y, "cross_entropy")
    torch.testing.assert_close(si.ggn(net, x, y, my_ce), g_builtin, rtol=1e-12, atol=1e-14)
    v = torch.randn(g_builtin.shape[0], dtype=torch.float64)
    torch.testing.assert_close(si.ggn_operator(net, x, y, my_ce).matvec(v), g_builtin @ v)


def test_callable_loss_without_a_forward_mode_rule():
    """torch's Huber loss has a double backward but no forward-mode rule for its backward: its
    ``Λ`` products, the GGN operator and the Hessian operator still work. Truth: ``Λ_i`` is
    ``diag(|z − y| ≤ 1)`` (its closed form), so the GGN is ``(1/N) Σ G_iᵀ Λ_i G_i`` of torch's
    Jacobians; the Hessian is torch's dense one of the mean loss."""
    net = _mlp()
    x = torch.randn(8, 4, dtype=torch.float64)
    y = 2 * torch.randn(8, 3, dtype=torch.float64)

    def huber(z, t):
        return torch.nn.functional.huber_loss(z, t, reduction="none").sum(1)

    z = net(x).detach()
    dz = torch.randn_like(z)
    lam = ((z - y).abs() <= 1).double()
    torch.testing.assert_close(si.losses.get_loss(huber).apply_hessian(z, y, dz), lam * dz)
    names = [k for k, _ in net.named_parameters()]
    g = torch.autograd.functional.jacobian(
        lambda *p: torch.func.functional_call(net, dict(zip(names, p, strict=True)), x),
        tuple(net.parameters()),
    )
    g = torch.cat([j.reshape(8, 3, -1) for j in g], dim=2)
    want = torch.einsum("nap,na,naq->pq", g, lam, g) / 8
    v = torch.randn(want.shape[0], dtype=torch.float64)
    torch.testing.assert_close(si.ggn_operator(net, x, y, huber).matvec(v), want @ v)
    torch.testing.assert_close(
        si.hessian_operator(net, x, y, huber).matvec(v), si.hessian(net, x, y, huber) @ v
    )


def test_callable_loss_jax_matches_builtin():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def apply(p, x):
        return jnp.tanh(x @ p["w1"]) @ p["w2"]

    rng = np.random.default_rng(0)
    params = {
        "w1": jnp.asarray(rng.normal(size=(4, 5))),
        "w2": jnp.asarray(rng.normal(size=(5, 2))),
    }
    x = jnp.asarray(rng.normal(size=(6, 4)))
    y = jnp.asarray(rng.normal(size=(6, 2)))
    model = si.as_model(apply, params)

    def my_mse(z, t):
        return 0.5 * jnp.sum((z - t) ** 2, axis=1)

    np.testing.assert_allclose(
        np.asarray(si.hessian(model, x, y, my_mse)),
        np.asarray(si.hessian(model, x, y, "mse")),
        rtol=1e-12,
        atol=1e-14,
    )
    np.testing.assert_allclose(
        np.asarray(si.ggn(model, x, y, my_mse)), np.asarray(si.ggn(model, x, y, "mse")), atol=1e-13
    )


def test_bad_targets_and_callables_are_refused():
    z = torch.zeros(2, 3, 5, dtype=torch.float64)
    with pytest.raises(ShapeError, match=r"\(2, 3\)"):
        losses.check_targets(z, torch.zeros(2, dtype=torch.int64), "cross_entropy")
    with pytest.raises(DTypeError, match="integer"):
        losses.check_targets(z, torch.zeros(2, 3, dtype=torch.float64), "cross_entropy")
    with pytest.raises(LabelError, match="ignore_index=-100"):
        losses.check_targets(z, torch.full((2, 3), -100), "cross_entropy")
    with pytest.raises(LabelError, match="every target"):
        losses.cross_entropy(ignore_index=-100).check(z, torch.full((2, 3), -100))
    with pytest.raises(ShapeError, match="bce_with_logits"):
        losses.cross_entropy().check(torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=int))
    with pytest.raises(LabelError, match=r"\[0, 1\]"):
        losses.bce_with_logits().check(z, torch.full(z.shape, 2.0, dtype=torch.float64))
    # one output per sample: a (N,) target is the column, and one logit is a binary classifier
    one = torch.zeros(4, 1, dtype=torch.float64)
    for name in ("mse", "bce_with_logits"):
        with pytest.raises(ShapeError, match=r"one column: pass y\[\.\.\., None\]"):
            losses.check_targets(one, torch.zeros(4, dtype=torch.float64), name)
    with pytest.raises(LabelError, match="binary classifier: use loss='bce_with_logits'"):
        losses.check_targets(one, torch.tensor([0, 1, 1, 0]), "cross_entropy")
    losses.check_targets(one, torch.zeros(4, dtype=torch.int64), "cross_entropy")  # constant
    with pytest.raises(ShapeError, match="per-sample losses"):
        losses.get_loss(lambda zz, t: (zz - t).sum()).check(z, torch.zeros_like(z))
    with pytest.raises(ValueError, match="one of"):
        losses.get_loss("hinge")
    from specinterp.adapters.arraynet import init_mlp

    net = init_mlp([3, 4, 2], seed=0)
    x = np.zeros((2, 3))
    with pytest.raises(ModelError, match="automatic differentiation"):
        si.ggn(net, x, np.zeros((2, 2)), lambda zz, t: ((zz - t) ** 2).sum(1))
