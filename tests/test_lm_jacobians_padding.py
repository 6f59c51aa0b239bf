"""Language-model Jacobian spectra and padded batches in torch, against autograd in float64.

Jacobian spectra through a linear head's factor and a chunk of samples at a time (GPT-2 from a
config, ``TinyLM``, a toy model with a biased head), and padded batches masked through
``pad_token_id`` (a BERT whose mask changes its outputs): every value against the SVD of a
Jacobian, or the output, NTK and HVP of the model called with its explicit attention mask.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import specinterp as si  # noqa: E402
from specinterp.errors import ModelError  # noqa: E402
from specinterp.model import input_space  # noqa: E402

from .lm_models import (  # noqa: E402
    D,
    F,
    T,
    TinyLM,
    V,
    bert,
    flat_params,
    gpt2,
    math_kernels,
    restore_fastpath,
    tiny_lm_problem,
)


@pytest.fixture(autouse=True)
def _restore_fastpath():
    yield from restore_fastpath()


@pytest.fixture(scope="module")
def tiny_lm():
    return tiny_lm_problem()


def test_jacobian_spectra_over_the_budget_go_a_chunk_of_samples_at_a_time(tiny_lm):
    # each J_i is T·V × T·D = 28 × 16 (3.5 KiB in float64): a budget of 8 KiB holds two
    # samples, so the batch runs as chunks of two token sequences (each its own embedded view)
    net, x, _ = tiny_lm
    model = si.as_model(net)  # TinyLM has no get_output_embeddings: no head factor
    e_ref = net.tok_emb.weight.detach()[x]
    with math_kernels():
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
    net = gpt2(vocab=40)
    x = torch.randint(0, 40, (3, 6))
    model = si.as_model(net)
    if last:
        model = si.views.output_position(model, x)
    e_ref = net.get_input_embeddings().weight.detach()[x]
    with math_kernels():
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

    net = gpt2(vocab=40)
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


def test_padded_batches_are_masked_with_pad_token_id():
    net = bert()
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
    flat, unflatten = flat_params(net)

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
    net = bert()
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
