"""Language models in torch on token ids: a ``TransformerEncoder`` LM and a Hugging Face GPT-2.

References are independent dense autodiff computations in float64: the Hessian by
``torch.autograd.functional.hessian`` (no vmap), the parameter Jacobian by
``torch.autograd.functional.jacobian``, the loss's output Hessian by autograd of
``F.cross_entropy``; Jacobians with respect to the embeddings by differentiating the model as a
function of its embeddings (GPT-2's own ``inputs_embeds=`` argument). The attention is run with
torch's math kernel in the references, because the fused kernels have no second derivatives.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import specinterp as si  # noqa: E402
from specinterp.errors import LabelError, ModelError, ShapeError  # noqa: E402
from specinterp.model import input_space  # noqa: E402

V, T, D = 7, 4, 4


class TinyLM(torch.nn.Module):
    """Token + position embeddings, a 1-layer ``TransformerEncoder``, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = torch.nn.Embedding(V, D)
        self.pos_emb = torch.nn.Embedding(T, D)
        layer = torch.nn.TransformerEncoderLayer(D, 2, 8, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = torch.nn.Linear(D, V)

    def from_embeddings(self, e: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(e + self.pos_emb(torch.arange(e.shape[1]))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_embeddings(self.tok_emb(x))


def _math_kernels():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.backends.mha.set_fastpath_enabled(False)
    return sdpa_kernel(SDPBackend.MATH)


@pytest.fixture(autouse=True)
def _restore_fastpath():
    yield
    torch.backends.mha.set_fastpath_enabled(True)


def _flat_params(module):
    """The flat parameter vector of ``module`` and ``theta ↦ {name: tensor}``."""
    params = dict(module.named_parameters())
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [math.prod(s) for s in shapes]
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])

    def unflatten(theta):
        chunks = torch.split(theta, sizes)
        return {k: c.reshape(s) for k, c, s in zip(names, chunks, shapes, strict=True)}

    return flat, unflatten


def _references(module, run, x, y, vocab):
    """Dense H, GGN, NTK of the mean token cross-entropy, by plain autograd."""
    flat, unflatten = _flat_params(module)

    def z_of(theta):
        with _math_kernels():
            return run(unflatten(theta), x)

    def loss(theta):
        return F.cross_entropy(z_of(theta).reshape(-1, vocab), y.reshape(-1))

    h = torch.autograd.functional.hessian(loss, flat)
    z = z_of(flat).detach()
    jac = torch.autograd.functional.jacobian(lambda t: z_of(t).reshape(-1), flat)
    hz = torch.autograd.functional.hessian(
        lambda zz: F.cross_entropy(zz.reshape(-1, vocab), y.reshape(-1)), z.reshape(-1)
    )
    return h, jac.T @ hz @ jac, jac @ jac.T


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    net = TinyLM().double().eval()
    x = torch.randint(0, V, (3, T))
    y = torch.randint(0, V, (3, T))
    return net, x, y


def test_transformer_encoder_lm_operators_equal_dense_autodiff(tiny_lm):
    net, x, y = tiny_lm
    h_ref, ggn_ref, k_ref = _references(
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
    with _math_kernels():
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


def _gpt2(vocab=16):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=vocab, n_positions=8, n_embd=4, n_layer=1, n_head=2, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(cfg).double().eval()


def test_gpt2_from_config_operators_equal_dense_autodiff():
    net = _gpt2()
    x = torch.randint(0, 16, (2, 6))
    y = torch.randint(0, 16, (2, 6))
    h_ref, ggn_ref, k_ref = _references(
        net, lambda d, xx: torch.func.functional_call(net, d, (xx,)).logits, x, y, 16
    )
    model = si.as_model(net)  # takes ModelOutput.logits by default; default (sdpa) attention
    torch.testing.assert_close(si.hessian(model, x, y, "cross_entropy"), h_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(si.ggn(model, x, y, "cross_entropy"), ggn_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(si.ntk(model, x), k_ref, rtol=0, atol=1e-10)
    # the embeddings are GPT-2's token embeddings; J equals autodiff through inputs_embeds
    e_ref = net.get_input_embeddings().weight.detach()[x]
    with _math_kernels():
        j_ref = torch.autograd.functional.jacobian(
            lambda e: net(inputs_embeds=e).logits.reshape(2, -1), e_ref
        )
    j_ref = torch.stack([j_ref[i, :, i].reshape(6 * 16, 6 * 4) for i in range(2)])
    torch.testing.assert_close(si.input_jacobian(model, x), j_ref, rtol=0, atol=1e-12)


def test_gpt2_last_token_ntk_through_an_output_selector():
    net = _gpt2()
    x = torch.randint(0, 16, (3, 6))
    last = si.as_model(net, output=lambda out: out.logits[:, -1])
    full = si.ntk(si.as_model(net), x)
    # the last-token NTK is the sub-block of the full one at the last position's outputs
    idx = torch.tensor([i * 96 + 5 * 16 + v for i in range(3) for v in range(16)])
    torch.testing.assert_close(si.ntk(last, x), full[idx][:, idx], rtol=1e-12, atol=1e-12)
    assert "GPT2LMHeadModel" in repr(last) and "p=" in repr(last)


def test_gpt2_next_token_view_computes_the_last_position_alone():
    # vocabulary 40 > d = 6·4: the derived input Jacobian takes columns (chunked JVPs)
    net = _gpt2(vocab=40)
    x = torch.randint(0, 40, (3, 6))
    full = si.as_model(net)
    view = si.views.output_position(full, x)
    assert "index=0 of 1" in repr(view)  # logits_to_keep=1: the head maps one position
    with torch.no_grad():
        logits = net(x).logits
    torch.testing.assert_close(view.apply(x), logits[:, -1], rtol=0, atol=1e-12)
    e_ref = net.get_input_embeddings().weight.detach()[x]
    with _math_kernels():
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


def test_jacobian_spectra_over_the_budget_go_a_chunk_of_samples_at_a_time(tiny_lm):
    # each J_i is T·V × T·D = 28 × 16 (3.5 KiB in float64): a budget of 8 KiB holds two
    # samples, so the batch runs as chunks of two token sequences (each its own embedded view)
    net, x, _ = tiny_lm
    model = si.as_model(net)  # TinyLM has no get_output_embeddings: no head factor
    e_ref = net.tok_emb.weight.detach()[x]
    with _math_kernels():
        j_ref = torch.autograd.functional.jacobian(
            lambda e: net.from_embeddings(e).reshape(x.shape[0], -1), e_ref
        )
    j_ref = torch.stack([j_ref[i, :, i].reshape(T * V, T * D) for i in range(x.shape[0])])
    s_ref = torch.linalg.svdvals(j_ref)
    assert x.shape[0] > 2
    with pytest.raises(si.errors.MemoryBudgetError, match="budget"):
        si.input_jacobian(model, x, max_bytes=2**13)
    got = si.jacobian_spectra(model, x, max_bytes=2**13)
    torch.testing.assert_close(got.singular_values, s_ref, rtol=1e-10, atol=1e-12)
    p = s_ref**2 / (s_ref**2).sum(dim=1, keepdim=True)
    torch.testing.assert_close(got.entropy, -(p * torch.log(p)).sum(dim=1), rtol=1e-8, atol=0)
    # one sample over the budget: nothing to chunk, the error says what to do
    with pytest.raises(si.errors.MemoryBudgetError, match="matrix-free"):
        si.jacobian_spectra(model, x, max_bytes=2**11)


@pytest.mark.parametrize("last", [True, False])
def test_gpt2_jacobian_spectra_through_its_linear_head(last):
    # J_i = (I ⊗ W) ∂h/∂e with W the 40 × 4 output embedding: σ(J_i) from 4 (next token) or
    # 6·4 (every position) rows instead of 40 or 240, equal to the SVD of autodiff's J_i
    net = _gpt2(vocab=40)
    x = torch.randint(0, 40, (3, 6))
    model = si.as_model(net)
    if last:
        model = si.views.output_position(model, x)
    e_ref = net.get_input_embeddings().weight.detach()[x]
    with _math_kernels():
        j_ref = torch.autograd.functional.jacobian(
            lambda e: net(inputs_embeds=e).logits[:, -1] if last else net(inputs_embeds=e).logits,
            e_ref,
        )
    c = 40 if last else 6 * 40
    j_ref = torch.stack([j_ref[i, ..., i, :, :].reshape(c, 24) for i in range(3)])
    view, e = input_space(model, x)
    b = view.input_jacobian_factor(e)
    assert tuple(b.shape) == (3, 4 if last else 24, 24)
    s_ref = torch.linalg.svdvals(j_ref)  # 24 values, rank ≤ 4 or 24
    got = si.jacobian_spectra(model, x)
    torch.testing.assert_close(got.singular_values, s_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(got.stable_rank, (s_ref**2).sum(1) / s_ref[:, 0] ** 2)
    # a budget of two samples' factors (one dense J_i would not fit): chunks of 2 and 1
    two = 2 * math.prod(b.shape[1:]) * 8
    assert two < c * 24 * 8
    chunked = si.jacobian_spectra(model, x, max_bytes=two)
    torch.testing.assert_close(chunked.singular_values, s_ref, rtol=0, atol=1e-12)
    # logits that are not the head's linear map (scaled) take the dense route, still right
    scaled = si.as_model(net, output=lambda out: 2.0 * out.logits)
    if last:
        scaled = si.views.output_position(scaled, x)
    view, e = input_space(scaled, x)
    with pytest.raises(NotImplementedError, match="not a linear map"):
        view.input_jacobian_factor(e)
    got = si.jacobian_spectra(scaled, x)
    torch.testing.assert_close(got.singular_values, 2.0 * s_ref, rtol=0, atol=1e-12)


def test_linear_head_factor_over_the_default_budget_steps_aside(monkeypatch):
    from specinterp.adapters import _torch_head

    net = _gpt2(vocab=40)
    x = torch.randint(0, 40, (3, 6))
    view, e = input_space(si.views.output_position(si.as_model(net), x), x)
    monkeypatch.setattr(_torch_head, "DEFAULT_MAX_BYTES", 1000)  # B is 3·4·24·8 = 2304 bytes
    with pytest.raises(NotImplementedError, match="would need"):
        view.input_jacobian_factor(e)


def test_linear_head_with_bias_and_positions_kept_by_the_selector():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(30, 3)
            self.mix = torch.nn.Linear(3, 3)
            self.out = torch.nn.Linear(3, 30)  # with a bias, which J does not see

        def get_output_embeddings(self):
            return self.out

        def forward(self, ids):
            return self.out(torch.tanh(self.mix(self.emb(ids))))

    torch.manual_seed(0)
    net = Head().double()
    x = torch.randint(0, 30, (4, 5))
    e_ref = net.emb.weight.detach()[x]
    j_ref = torch.autograd.functional.jacobian(
        lambda e: net.out(torch.tanh(net.mix(e))).reshape(4, -1), e_ref
    )
    j_ref = torch.stack([j_ref[i, :, i].reshape(150, 15) for i in range(4)])
    got = si.jacobian_spectra(si.as_model(net), x)
    torch.testing.assert_close(got.singular_values, torch.linalg.svdvals(j_ref), atol=1e-12, rtol=0)
    # a selector that drops positions: outputs (N, V) against the head's (N, T, V) — dense route
    first = si.as_model(net, output=lambda z: z[:, 0])
    view, e = input_space(first, x)
    with pytest.raises(NotImplementedError, match="not the head's"):
        view.input_jacobian_factor(e)
    torch.testing.assert_close(
        si.jacobian_spectra(first, x).singular_values,
        torch.linalg.svdvals(j_ref[:, :30, :]),
        atol=1e-12,
        rtol=0,
    )


def _bert(vocab=30):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=vocab, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16, num_labels=3, pad_token_id=0,
        attn_implementation="eager", initializer_range=0.5,  # weights that make the mask matter
    )  # fmt: skip
    return transformers.BertForSequenceClassification(cfg).double().eval()


def test_padded_batches_are_masked_with_pad_token_id():
    net = _bert()
    x = torch.randint(1, 30, (3, 7))
    x[0, 4:] = 0  # padding at the end of two sequences
    x[2, 6:] = 0
    mask = (x != 0).long()
    y = torch.tensor([0, 2, 1])
    model = si.as_model(net, pad_token_id=0)
    with torch.no_grad():
        want = net(x, attention_mask=mask).logits
        unmasked = net(x).logits
    torch.testing.assert_close(model.apply(x), want, rtol=0, atol=1e-12)
    assert (want - unmasked).abs().max() > 1e-2 * want.abs().max()  # the mask matters here
    flat, unflatten = _flat_params(net)

    def logits(theta, ids, m):
        return torch.func.functional_call(
            net, unflatten(theta), (ids,), {"attention_mask": m}
        ).logits

    g_ref = torch.autograd.functional.jacobian(lambda t: logits(t, x, mask), flat)  # (N, C, p)
    g_ref = g_ref.reshape(9, -1)
    torch.testing.assert_close(si.ntk(model, x), g_ref @ g_ref.T, rtol=0, atol=1e-10)
    v = torch.randn(model.num_params, dtype=torch.float64)
    hv_ref = torch.autograd.functional.hvp(
        lambda t: F.cross_entropy(logits(t, x, mask), y), flat, v
    )[1]
    torch.testing.assert_close(
        si.hessian_operator(model, x, y, "cross_entropy").matvec(v), hv_ref, rtol=0, atol=1e-10
    )
    # input side: with respect to the token embeddings, the mask following the ids
    e_ref = net.get_input_embeddings().weight.detach()[x]
    j_ref = torch.autograd.functional.jacobian(
        lambda e: net(inputs_embeds=e, attention_mask=mask).logits, e_ref
    )
    j_ref = torch.stack([j_ref[i, :, i].reshape(3, 7 * 8) for i in range(3)])
    torch.testing.assert_close(si.input_jacobian(model, x), j_ref, rtol=0, atol=1e-12)
    view, e = input_space(model, x)
    torch.testing.assert_close(si.input_jacobian(view, e, native=False), j_ref, rtol=0, atol=1e-12)


def test_pad_token_without_a_mask_warns_once_and_bad_pad_options():
    net = _bert()
    x = torch.randint(1, 30, (2, 5))
    x[0, 3:] = 0
    model = si.as_model(net)
    with pytest.warns(UserWarning, match=r"pad_token_id 0.*as_model\(model, pad_token_id=0\)"):
        model.apply(x)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.apply(x)  # once per model
        si.as_model(net).apply(torch.randint(1, 30, (2, 5)))  # no padding: no warning
    with pytest.raises(ModelError, match="takes none"):
        si.as_model(TinyLM().eval(), pad_token_id=0)
    with pytest.raises(ModelError, match="apply its mask itself"):
        si.as_model(lambda p, ids: p["w"][ids], {"w": torch.ones(3, 2)}, pad_token_id=0)


def test_per_token_loss_with_ignore_index_hessian():
    net = _gpt2()
    x = torch.randint(0, 16, (2, 6))
    y = torch.randint(0, 16, (2, 6))
    y[0, :4] = -100
    model = si.as_model(net)
    loss = si.losses.cross_entropy(ignore_index=-100)
    flat, unflatten = _flat_params(net)

    def ref(theta):
        with _math_kernels():
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
    flat, unflatten = _flat_params(reg)

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
    flat, unflatten = _flat_params(net)

    def last_token_loss(theta):
        with _math_kernels():
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
