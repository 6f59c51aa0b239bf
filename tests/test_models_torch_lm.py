"""Language models in torch on token ids: a ``TransformerEncoder`` LM and a Hugging Face GPT-2.

References are independent dense autodiff computations in float64: the Hessian by
``torch.autograd.functional.hessian`` (no vmap), the parameter Jacobian by
``torch.autograd.functional.jacobian``, the loss's output Hessian by autograd of
``F.cross_entropy``; Jacobians with respect to the embeddings by differentiating the model as a
function of its embeddings (GPT-2's own ``inputs_embeds=`` argument). The attention is run with
torch's math kernel in the references, because the fused kernels have no second derivatives.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import specinterp as si  # noqa: E402
from specinterp.errors import LabelError, ModelError, ShapeError  # noqa: E402
from specinterp.model import input_space  # noqa: E402

from .lm_models import (  # noqa: E402
    D,
    T,
    V,
    flat_params,
    gpt2,
    math_kernels,
    references,
    restore_fastpath,
    tiny_lm_problem,
)


@pytest.fixture(autouse=True)
def _restore_fastpath():
    yield from restore_fastpath()


@pytest.fixture(scope="module")
def tiny_lm():
    return tiny_lm_problem()


def test_transformer_encoder_lm_operators_equal_dense_autodiff(tiny_lm):
    net, x, y = tiny_lm
    h_ref, ggn_ref, k_ref = references(
        net, lambda d, xx: torch.func.functional_call(net, d, (xx,)), x, y, V
    )
    model = si.as_model(net)
    assert model.output_shape(x) == (T, V)
    assert f"p={model.num_params:,}" in repr(model)
    assert f"token ids ({T},) → outputs ({T}, {V})" in repr(model)
    torch.testing.assert_close(si.hessian(model, x, y, "cross_entropy"), h_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(si.ggn(model, x, y, "cross_entropy"), ggn_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(si.ntk(model, x), k_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(si.ntk(model, x, native=False), k_ref, rtol=0, atol=1e-10)
    v = torch.randn(model.num_params, dtype=torch.float64)
    torch.testing.assert_close(
        si.ggn_operator(model, x, y, "cross_entropy").matvec(v), ggn_ref @ v, rtol=0, atol=1e-10
    )


def test_transformer_encoder_lm_input_jacobian_is_with_respect_to_token_embeddings(tiny_lm):
    net, x, _ = tiny_lm
    model = si.as_model(net)
    e_ref = net.tok_emb.weight.detach()[x]
    with math_kernels():
        j_ref = torch.autograd.functional.jacobian(
            lambda e: net.from_embeddings(e).reshape(x.shape[0], -1), e_ref
        )  # (N, C, N, T, d): block-diagonal in samples
    j_ref = torch.stack([j_ref[i, :, i].reshape(T * V, T * D) for i in range(x.shape[0])])
    view, e = input_space(model, x)
    torch.testing.assert_close(e, e_ref, rtol=0, atol=0)
    torch.testing.assert_close(si.input_jacobian(model, x), j_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(si.input_jacobian(view, e, native=False), j_ref, rtol=0, atol=1e-12)
    sal = si.attribution.saliency(model, x, 9)  # output index 9 = token 1, word 2
    torch.testing.assert_close(sal.reshape(x.shape[0], -1), j_ref[:, 9, :])
    spectra = si.jacobian_spectra(model, x)
    ref_norms = torch.linalg.matrix_norm(j_ref, ord=2)
    torch.testing.assert_close(spectra.operator_norm, ref_norms)
    # SmoothGrad with zero noise is the saliency map (k copies of each sequence)
    sg = si.attribution.smoothgrad(model, x, 9, noise=torch.zeros(3, 4, T, D, dtype=torch.float64))
    torch.testing.assert_close(sg, sal)


def test_gpt2_from_config_operators_equal_dense_autodiff():
    net = gpt2()
    x = torch.randint(0, 16, (2, 6))
    y = torch.randint(0, 16, (2, 6))
    h_ref, ggn_ref, k_ref = references(
        net, lambda d, xx: torch.func.functional_call(net, d, (xx,)).logits, x, y, 16
    )
    model = si.as_model(net)  # takes ModelOutput.logits by default; default (sdpa) attention
    torch.testing.assert_close(si.hessian(model, x, y, "cross_entropy"), h_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(si.ggn(model, x, y, "cross_entropy"), ggn_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(si.ntk(model, x), k_ref, rtol=0, atol=1e-10)
    # the embeddings are GPT-2's token embeddings; J equals autodiff through inputs_embeds
    e_ref = net.get_input_embeddings().weight.detach()[x]
    with math_kernels():
        j_ref = torch.autograd.functional.jacobian(
            lambda e: net(inputs_embeds=e).logits.reshape(2, -1), e_ref
        )
    j_ref = torch.stack([j_ref[i, :, i].reshape(6 * 16, 6 * 4) for i in range(2)])
    torch.testing.assert_close(si.input_jacobian(model, x), j_ref, rtol=0, atol=1e-12)


def test_gpt2_last_token_ntk_through_an_output_selector():
    net = gpt2()
    x = torch.randint(0, 16, (3, 6))
    last = si.as_model(net, output=lambda out: out.logits[:, -1])
    full = si.ntk(si.as_model(net), x)
    # the last-token NTK is the sub-block of the full one at the last position's outputs
    idx = torch.tensor([i * 96 + 5 * 16 + v for i in range(3) for v in range(16)])
    torch.testing.assert_close(si.ntk(last, x), full[idx][:, idx], rtol=1e-12, atol=1e-12)
    assert "GPT2LMHeadModel" in repr(last) and "p=" in repr(last)


def test_gpt2_next_token_view_computes_the_last_position_alone():
    # vocabulary 40 > d = 6·4: the derived input Jacobian takes columns (chunked JVPs)
    net = gpt2(vocab=40)
    x = torch.randint(0, 40, (3, 6))
    full = si.as_model(net)
    view = si.views.output_position(full, x)
    assert "index=0 of 1" in repr(view)  # logits_to_keep=1: the head maps one position
    with torch.no_grad():
        logits = net(x).logits
    torch.testing.assert_close(view.apply(x), logits[:, -1], rtol=0, atol=1e-12)
    e_ref = net.get_input_embeddings().weight.detach()[x]
    with math_kernels():
        j_ref = torch.autograd.functional.jacobian(
            lambda e: net(inputs_embeds=e).logits[:, -1], e_ref
        )  # (N, V, N, T, d): block-diagonal in samples
    j_ref = torch.stack([j_ref[i, :, i].reshape(40, 24) for i in range(3)])
    model_e, e = si.model.input_space(view, x)
    torch.testing.assert_close(si.input_jacobian(view, x), j_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        si.input_jacobian(model_e, e, native=False), j_ref, rtol=0, atol=1e-12
    )
    rows = torch.arange(5 * 40, 6 * 40)
    idx = torch.cat([i * 6 * 40 + rows for i in range(3)])
    torch.testing.assert_close(si.ntk(view, x), si.ntk(full, x)[idx][:, idx], rtol=0, atol=1e-10)


def test_per_token_loss_with_ignore_index_hessian():
    net = gpt2()
    x = torch.randint(0, 16, (2, 6))
    y = torch.randint(0, 16, (2, 6))
    y[0, :4] = -100
    model = si.as_model(net)
    loss = si.losses.cross_entropy(ignore_index=-100)
    flat, unflatten = flat_params(net)

    def ref(theta):
        with math_kernels():
            z = torch.func.functional_call(net, unflatten(theta), (x,)).logits
        return F.cross_entropy(z.reshape(-1, 16), y.reshape(-1), ignore_index=-100)

    v = torch.randn(model.num_params, dtype=torch.float64)
    hv_ref = torch.autograd.functional.hvp(ref, flat, v)[1]
    torch.testing.assert_close(
        si.hessian_operator(model, x, y, loss).matvec(v), hv_ref, rtol=0, atol=1e-10
    )
    with pytest.raises(LabelError, match="ignore_index=-100"):
        si.hessian_operator(model, x, y, "cross_entropy")


def test_regression_and_structured_outputs():
    torch.manual_seed(0)
    reg = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1), torch.nn.Flatten(0)
    ).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.randn(5, dtype=torch.float64)
    model = si.as_model(reg)
    assert model.output_shape(x) == ()
    flat, unflatten = flat_params(reg)

    def loss(theta):
        return 0.5 * ((torch.func.functional_call(reg, unflatten(theta), (x,)) - y) ** 2).mean()

    torch.testing.assert_close(
        si.hessian(model, x, y, "mse"), torch.autograd.functional.hessian(loss, flat)
    )

    class Dict(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, xx):
            return {"scores": self.lin(xx), "aux": xx}

    with pytest.raises(ModelError, match="'scores', 'aux'"):
        si.as_model(Dict().double()).apply(x)
    picked = si.as_model(Dict().double(), output="scores")
    assert picked.apply(x).shape == (5, 2)


def test_token_input_errors(tiny_lm):
    net, x, y = tiny_lm
    model = si.as_model(net)
    with pytest.raises(LabelError, match="7 rows"):
        model.apply(x + 20)
    with pytest.raises(ShapeError, match=r"\(3, 4\)"):
        si.hessian_operator(model, x, y[:, :3], "cross_entropy")

    class TwoTables(torch.nn.Module):  # two tables both fed the ids: ambiguous
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Embedding(V, D)
            self.b = torch.nn.Embedding(V, D)
            self.head = torch.nn.Linear(D, V)

        def forward(self, xx):
            return self.head(self.a(xx) * self.b(xx))

    two = TwoTables().double()
    with pytest.raises(ModelError, match="embedding='name'"):
        si.input_jacobian(two, x)
    named = si.as_model(two, embedding="a")
    assert si.input_jacobian(named, x).shape == (3, T * V, T * D)
    with pytest.raises(ModelError, match="no submodule 'c'"):
        si.input_jacobian(si.as_model(two, embedding="c"), x)

    mlp = torch.nn.Sequential(torch.nn.Linear(T, 3)).double()  # no embedding at all
    with pytest.raises(ModelError, match="embedding"):
        si.input_jacobian(mlp, x)
    with pytest.raises(ModelError, match="token ids"):
        si.as_model(mlp).apply(x)


def test_last_position_view_is_the_slice_of_the_full_model(tiny_lm):
    net, x, y = tiny_lm
    full = si.as_model(net)
    view = si.views.output_position(full, x)  # next-token logits at the last position
    assert view.output_shape(x) == (V,)
    rows = torch.arange((T - 1) * V, T * V)
    torch.testing.assert_close(view.apply(x), full.apply(x)[:, rows])
    k_full = si.ntk(full, x)
    idx = torch.cat([i * T * V + rows for i in range(x.shape[0])])
    torch.testing.assert_close(si.ntk(view, x), k_full[idx][:, idx], rtol=0, atol=1e-12)
    torch.testing.assert_close(
        si.input_jacobian(view, x), si.input_jacobian(full, x)[:, rows, :], rtol=0, atol=1e-12
    )
    # its loss is the cross-entropy of the last token's prediction
    flat, unflatten = flat_params(net)

    def last_token_loss(theta):
        with math_kernels():
            z = torch.func.functional_call(net, unflatten(theta), (x,))
        return F.cross_entropy(z[:, -1], y[:, -1])

    torch.testing.assert_close(
        si.hessian(view, x, y[:, -1], "cross_entropy"),
        torch.autograd.functional.hessian(last_token_loss, flat),
        rtol=0,
        atol=1e-10,
    )
    v = torch.randn(view.num_params, dtype=torch.float64)
    ggn_v = si.ggn_operator(view, x, y[:, -1], "cross_entropy").matvec(v)
    torch.testing.assert_close(si.ggn(view, x, y[:, -1], "cross_entropy") @ v, ggn_v)
    with pytest.raises(ShapeError, match="built for"):
        view.apply(x[:, :2])


def test_encoder_decoder_model_is_refused_and_its_encoder_route_is_exact():
    """A T5 called on ids alone fails inside its decoder: the adapter says what to pass, and
    the suggested encoder route gives the Jacobian spectra of the encoder's hidden states
    with respect to the token embeddings (checked against ``jacrev`` on ``inputs_embeds``)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.T5Config(
        vocab_size=20, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2,
        decoder_start_token_id=0,
    )  # fmt: skip
    t5 = transformers.T5ForConditionalGeneration(cfg).double().eval()
    with pytest.raises(ModelError, match=r"encoder-decoder.*get_encoder\(\)"):
        si.as_model(t5)
    enc = t5.get_encoder()
    model = si.as_model(enc, output="last_hidden_state")
    ids = torch.randint(1, 20, (2, 5))
    got = si.jacobian_spectra(model, ids).singular_values
    enc.requires_grad_(False)  # the reference differentiates the embeddings alone
    for i in range(2):
        e = t5.shared(ids[i : i + 1]).detach()
        jac = torch.func.jacrev(lambda ee: enc(inputs_embeds=ee).last_hidden_state)(e)
        want = torch.linalg.svdvals(jac.reshape(5 * 8, 5 * 8))
        torch.testing.assert_close(got[i], want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("streamed", [False, True])
def test_gmsi_of_a_token_model_takes_s_j_on_the_embeddings(streamed):
    """``s_J = max_i σ_1(J_i)`` with ``J_i`` the Jacobian with respect to the token embeddings
    (``jacrev``), in memory and over a list of batches; both stopped with a ShapeError when
    the Jacobian spectra were chunked on an embedded view bound to the whole batch."""
    from .lm_models import BagOfTokens

    lm = BagOfTokens()
    torch.manual_seed(1)
    ids, y = torch.randint(0, 7, (6, 5)), torch.randint(0, 4, (6,))
    model = si.as_model(lm)
    if streamed:
        got = si.gmsi(model, data=[(ids[:4], y[:4]), (ids[4:], y[4:])], progress=False)
    else:
        got = si.gmsi(model, ids, y, progress=False)
    s = []
    for i in range(6):
        e = lm.emb(ids[i : i + 1]).detach()
        jac = torch.func.jacrev(lambda ee: lm.out(torch.tanh(ee)).sum(1))(e).reshape(4, -1)
        s.append(float(torch.linalg.svdvals(jac.detach())[0]))
    assert got.components["forward"] == pytest.approx(max(s), rel=1e-12)
    # the embedded view itself (documented route) gives the same spectra
    model_e, e = input_space(model, ids)
    np.testing.assert_allclose(
        si.jacobian_spectra(model_e, e).operator_norm.numpy(), np.asarray(s), rtol=1e-12
    )


def test_dense_hessian_by_vmap_over_columns_and_its_fallback(tiny_lm, monkeypatch):
    """The torch dense Hessian maps forward-over-reverse products over its columns (checked
    against plain autograd); where vmap cannot map the module, p products give the same."""
    from specinterp.adapters import _torch_dense

    net, x, y = tiny_lm
    h_ref = references(net, lambda d, xx: torch.func.functional_call(net, d, (xx,)), x, y, V)[0]
    model = si.as_model(net)
    assert isinstance(model, si.capabilities.NativeHessian)
    torch.testing.assert_close(model.loss_hessian(x, y, "cross_entropy"), h_ref, rtol=0, atol=1e-10)
    monkeypatch.setattr(_torch_dense, "HESSIAN_CHUNK_ENTRIES", 1)  # one column a chunk
    torch.testing.assert_close(model.loss_hessian(x, y, "cross_entropy"), h_ref, rtol=0, atol=1e-10)

    def unmappable(*args, **kwargs):
        raise RuntimeError("vmap: no batching rule (simulated)")

    monkeypatch.setattr(si.adapters._torch_curvature, "vmap_hessian", unmappable)
    with pytest.raises(NotImplementedError, match="vmap cannot map"):
        model.loss_hessian(x, y, "cross_entropy")
    torch.testing.assert_close(si.hessian(model, x, y, "cross_entropy"), h_ref, rtol=0, atol=1e-10)
