"""Language models for the torch LM tests, and their references by plain autograd.

``TinyLM`` (a ``TransformerEncoder`` LM), ``BagOfTokens`` (a classifier of token sequences),
Hugging Face GPT-2 and BERT from configs with random
weights (float64), the math attention kernel the references need (the fused kernels have no
second derivatives), and dense Hessian / GGN / NTK references of the per-token loss. Test
modules wrap ``tiny_lm_problem`` and ``restore_fastpath`` in fixtures of their own.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

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


class BagOfTokens(torch.nn.Module):
    """``Σ_t head(tanh(E[x_t]))``: one class score vector per token sequence (float64)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(V, 3, dtype=torch.float64)
        self.out = torch.nn.Linear(3, 4, dtype=torch.float64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.emb(ids))).sum(1)


def math_kernels():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.backends.mha.set_fastpath_enabled(False)
    return sdpa_kernel(SDPBackend.MATH)


def restore_fastpath():
    """After a test: torch's ``TransformerEncoderLayer`` fast path back on (for a fixture)."""
    yield
    torch.backends.mha.set_fastpath_enabled(True)


def flat_params(module):
    """The flat parameter vector of ``module`` and ``theta ↦ {name: tensor}``."""
    params = dict(module.named_parameters())
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [math.prod(s) for s in shapes]
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])

    def unflatten(theta):
        chunks = torch.split(theta, sizes)
        return {k: c.reshape(s) for k, c, s in zip(names, chunks, shapes, strict=True)}

    return flat, unflatten


def references(module, run, x, y, vocab):
    """Dense H, GGN, NTK of the mean token cross-entropy, by plain autograd."""
    flat, unflatten = flat_params(module)

    def z_of(theta):
        with math_kernels():
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


def tiny_lm_problem():
    """A float64 ``TinyLM`` with 3 token sequences and next-token targets."""
    torch.manual_seed(0)
    net = TinyLM().double().eval()
    x = torch.randint(0, V, (3, T))
    y = torch.randint(0, V, (3, T))
    return net, x, y


def gpt2(vocab=16):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=vocab, n_positions=8, n_embd=4, n_layer=1, n_head=2, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(cfg).double().eval()


def bert(vocab=30):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=vocab, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16, num_labels=3, pad_token_id=0,
        attn_implementation="eager", initializer_range=0.5,  # weights that make the mask matter
    )  # fmt: skip
    return transformers.BertForSequenceClassification(cfg).double().eval()
