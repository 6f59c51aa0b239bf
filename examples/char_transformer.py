"""A character-level transformer trained on the Python standard library's own source text.

The text ships with every Python installation (``inspect.getsource`` of a few stdlib modules),
so nothing is downloaded. Characters are bytes folded into 7-bit ASCII (vocabulary 128). The
model is a causal two-layer ``torch.nn.TransformerEncoder`` with token and position
embeddings (about 0.1 M parameters), trained for a few hundred Adam steps on CPU; the weights
are cached next to the built-in report model's (``$SPECINTERP_CACHE`` or
``~/.cache/specinterp``).

Run the report on it — per-sequence Jacobian spectra of the next-token logits with respect to
the token embeddings, the NTK of those logits, Hessian top-k and density of the per-token
loss, weight spectra and GMSI::

    specinterp report --model examples/char_transformer.py:model \\
        --data examples/char_transformer.py:data --samples 64

or train and report from Python: ``python examples/char_transformer.py``.
``CHAR_TRANSFORMER_STEPS`` sets the number of training steps (default 400).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np
import torch

VOCAB, CONTEXT, WIDTH, HEADS, LAYERS = 128, 32, 48, 4, 2
STEPS = int(os.environ.get("CHAR_TRANSFORMER_STEPS", 400))
MODULES = ("textwrap", "string", "functools", "contextlib", "dataclasses", "json.decoder")


def corpus() -> np.ndarray:
    """The source text of a few standard-library modules as 7-bit codes."""
    import importlib

    text = "\n".join(inspect.getsource(importlib.import_module(m)) for m in MODULES)
    return np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8).astype(np.int64) % VOCAB


class CharTransformer(torch.nn.Module):
    """Causal transformer language model over bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = torch.nn.Embedding(VOCAB, WIDTH)
        self.pos_emb = torch.nn.Embedding(CONTEXT, WIDTH)
        layer = torch.nn.TransformerEncoderLayer(
            WIDTH, HEADS, 2 * WIDTH, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = torch.nn.Linear(WIDTH, VOCAB)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(CONTEXT))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        h = self.tok_emb(ids) + self.pos_emb(torch.arange(t, device=ids.device))
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.head(h)


def _windows(codes: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = starts[:, None] + np.arange(CONTEXT + 1)
    chunk = codes[idx]
    return chunk[:, :-1], chunk[:, 1:]


def _split() -> tuple[np.ndarray, np.ndarray]:
    codes = corpus()
    cut = int(0.9 * len(codes))
    return codes[:cut], codes[cut:]


def _cache_path() -> Path:
    root = Path(os.environ.get("SPECINTERP_CACHE", Path.home() / ".cache" / "specinterp"))
    return root / f"char-transformer-c{CONTEXT}-w{WIDTH}-l{LAYERS}-s{STEPS}.pt"


def train(steps: int = STEPS, seed: int = 0) -> CharTransformer:
    """Adam on random windows of the training text (float32, CPU)."""
    torch.manual_seed(seed)
    train_codes, _ = _split()
    net = CharTransformer()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x, y = _windows(train_codes, rng.integers(0, len(train_codes) - CONTEXT - 1, 32))
        logits = net(torch.as_tensor(x))
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, VOCAB), torch.as_tensor(y).reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def model() -> CharTransformer:
    """The trained model (from the cache when present) — ``--model`` factory of the report."""
    path = _cache_path()
    if path.is_file():
        net = CharTransformer()
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    net = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net


def data(count: int = 256, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Held-out windows ``(x, y)``: token ids and next-token targets, ``(count, CONTEXT)``."""
    _, test_codes = _split()
    rng = np.random.default_rng(seed)
    return _windows(test_codes, rng.integers(0, len(test_codes) - CONTEXT - 1, count))


if __name__ == "__main__":
    from specinterp.cli import main

    raise SystemExit(
        main(["report", "--model", f"{__file__}:model", "--data", f"{__file__}:data",
              "--samples", "64", "--out", "report-char-transformer"])
    )  # fmt: skip
