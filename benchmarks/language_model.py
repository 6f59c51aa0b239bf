"""Hessian and GGN top-5 of a GPT-2-style language model, against curvlinops + ARPACK.

The model is Hugging Face's ``GPT2LMHeadModel`` built from a config with random weights
(nothing downloaded): byte-level vocabulary (256), 6 layers, width 384, 6 heads — 10.8 M
parameters, float32, eager attention (curvlinops needs second derivatives, which the fused
kernels lack). The data are 8 sequences of 64 bytes of the Python standard library's own source
text; the loss is the mean per-token cross-entropy. Each library computes the top-5 eigenvalues
of the Hessian and of the GGN at tolerance 1e-3: specinterp's ``eigsh`` on
``hessian_operator`` / ``ggn_operator`` (its missed-eigenvalue check on and off), curvlinops'
``HessianLinearOperator`` / ``GGNLinearOperator`` with ``scipy.sparse.linalg.eigsh``. Each run
is a fresh process, so its peak resident memory (``VmHWM``) is its own; the relative error
of each run's eigenvalues is measured against specinterp at tolerance 1e-6 on the same
operator. ``SPECINTERP_BENCH_LM_SCALE=small`` runs a 0.4 M-parameter model instead.
"""

from __future__ import annotations

import os
import textwrap

from ._timing import run_child

SIZES = {
    "full": {"n_embd": 384, "n_layer": 6, "n_head": 6},
    "small": {"n_embd": 64, "n_layer": 2, "n_head": 2},
}

CHILD = textwrap.dedent(
    """
    def peak_mb():  # this process's peak RSS: VmHWM is reset by exec, ru_maxrss is not
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    import json, sys, time
    import numpy as np
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    size, library, operator, tol, verify = json.loads(sys.argv[1])
    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = transformers.GPT2Config(vocab_size=256, n_positions=64, bos_token_id=0,
                                  eos_token_id=0, attn_implementation="eager", **size)
    net = transformers.GPT2LMHeadModel(cfg).eval()
    from benchmarks.language_model import stdlib_bytes
    data = torch.as_tensor(stdlib_bytes(8 * 65), dtype=torch.int64).reshape(8, 65)
    x, y = data[:, :64].contiguous(), data[:, 1:].contiguous()
    t0 = time.perf_counter()
    if library == "specinterp":
        import specinterp as si
        build = si.hessian_operator if operator == "hessian" else si.ggn_operator
        op = build(si.as_model(net), x, y, "cross_entropy")
        res = si.linalg.eigsh(op, 5, which="LA", tol=tol, seed=0, verify=verify)
        values, matvecs = np.sort(np.asarray(res.values))[::-1], res.num_matvecs
    else:
        from curvlinops import GGNLinearOperator, HessianLinearOperator

        class Logits(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m
            def forward(self, ids):
                return self.m(ids).logits.reshape(-1, 256)

        cls = HessianLinearOperator if operator == "hessian" else GGNLinearOperator
        params = [p for p in net.parameters() if p.requires_grad]
        lop = cls(Logits(net), torch.nn.CrossEntropyLoss(), params, [(x, y.reshape(-1))],
                  check_deterministic=False, batch_size_fn=lambda ids: ids.shape[0])
        from benchmarks._peers import arpack_top5
        values, matvecs = arpack_top5(lop, tol, 5, one_thread=library == "curvlinops-1")
        values = np.sort(values)[::-1]
    seconds = time.perf_counter() - t0
    print(json.dumps({"values": [float(v) for v in values], "matvecs": matvecs,
                      "seconds": seconds,
                      "peak_mb": peak_mb(),
                      "params": sum(p.numel() for p in net.parameters())}))
    """
)


def stdlib_bytes(count: int) -> list[int]:
    """The first ``count`` bytes of the standard library's own source (``os``, ``typing``...)."""
    import inspect
    import typing

    text = (inspect.getsource(os) + inspect.getsource(typing)).encode()
    return list(text[:count])


def _child(size: dict, library: str, operator: str, tol: float, verify: bool = True) -> dict:
    return run_child(CHILD, [size, library, operator, tol, verify])


def run(repeats: int = 1) -> list[dict[str, object]]:
    import numpy as np

    size = SIZES[os.environ.get("SPECINTERP_BENCH_LM_SCALE", "full")]
    rows: list[dict[str, object]] = []
    for operator in ("hessian", "ggn"):
        ref = np.asarray(_child(size, "specinterp", operator, 1e-6)["values"])
        runs = {
            "specinterp eigsh": ("specinterp", True),
            "specinterp eigsh verify=False": ("specinterp", False),
        }
        try:
            import curvlinops  # noqa: F401

            runs["curvlinops + ARPACK"] = ("curvlinops", True)
            runs["curvlinops + ARPACK, 1 BLAS thread"] = ("curvlinops-1", True)
        except ImportError:
            pass
        results = {
            name: _child(size, lib, operator, 1e-3, verify) for name, (lib, verify) in runs.items()
        }
        peers = [out for name, out in results.items() if name.startswith("curvlinops")]
        peer = min(peers, key=lambda out: out["seconds"], default=None)  # ARPACK at its best
        for name, out in results.items():
            err = float(np.max(np.abs(np.asarray(out["values"]) - ref) / np.abs(ref)))
            rows.append(
                {
                    "case": f"GPT-2-style LM, {out['params'] / 1e6:.1f} M params: {operator} top-5",
                    "method": name,
                    "products": out["matvecs"],
                    "seconds": out["seconds"],
                    "peak MB": out["peak_mb"],
                    "rel. error": err,
                    "time ratio (peer/this)": None
                    if peer is None
                    else peer["seconds"] / out["seconds"],
                    "memory ratio (peer/this)": None
                    if peer is None
                    else peer["peak_mb"] / out["peak_mb"],
                }
            )
    return rows
