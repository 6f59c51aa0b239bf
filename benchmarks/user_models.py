"""The GMSI and dense Hessians as a user runs them (issue: performance 2).

Case 8 — ``si.gmsi`` with its defaults on a ResNet-style model (``benchmarks._nets.resnet``:
75.6 k parameters, convolutions, BatchNorm in eval mode, residual adds; 16 images, float32,
cross-entropy), against a float64 copy of the same network at tolerance 1e-10: every
component's relative difference next to the tolerance the float32 run states (Lanczos at
``√eps`` = 3.5e-4; the dense NTK to float32 rounding). Also the same call with the previous
defaults (``tol=1e-8``, 10 SLQ probes × 40 steps).

Case 8c — ``si.gmsi`` with its defaults on a GPT-2-style language model (Hugging Face
``GPT2LMHeadModel`` from a config, random weights: 2 layers, width 64, vocabulary 300; 4
sequences of 12 tokens, float32, per-token cross-entropy with the inputs as targets): ``N·C =
14 400`` outputs, so the NTK is matrix-free with ``C = T·V = 3 600`` outputs per sample. Next
to it, the exact per-sample blocks it no longer forms (``block_eigenvalues``: ``s_θ`` and
``tr K``), to check the per-sample Lanczos ``s_θ`` and the SLQ estimate of the trace.

Case 8d — ``si.jacobian_spectra`` of the next-token logits of a GPT-2 with its real
vocabulary (50 257 words, width 64, 2 layers; 4 sequences of 32 tokens, float32, Jacobians with
respect to the token embeddings, ``d = 2048``): through the linear head's factor
(``σ(J_i) = σ(R ∂h/∂e)``, 64 rows), by the dense route (the head's factor refused), and the
torch.func recipe (``vmap(jacfwd)`` of the next-token logits in the embeddings, then
``torch.linalg.svdvals``), with the largest relative difference of the singular values above
``1e-3 σ_1`` from the recipe's.

Case 9 — the dense loss Hessian of an Equinox MLP (64-24-24-10, tanh, p = 2410, 32 samples,
float32) by ``specinterp.operators.hessian`` against ``jax.jit(jax.hessian(loss))``, each in a
fresh process, first call (compilation included) and second call.
"""

from __future__ import annotations

import textwrap
import time

from ._timing import run_child

JAX_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import jax, jax.numpy as jnp, equinox as eqx
    (who,) = json.loads(sys.argv[1])
    mlp = eqx.nn.MLP(64, 10, 24, 2, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((32, 64)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 32))
    if who == "specinterp":
        import specinterp as si
        m = si.as_model(mlp)
        def call():
            return si.operators.hessian(m, x, y, "cross_entropy").block_until_ready()
    else:
        from jax.flatten_util import ravel_pytree
        params, static = eqx.partition(mlp, eqx.is_inexact_array)
        flat, unravel = ravel_pytree(params)
        def loss(t):
            z = jax.vmap(eqx.combine(unravel(t), static))(x)
            return jnp.mean(jax.nn.logsumexp(z, axis=1) - z[jnp.arange(32), y])
        compiled = jax.jit(jax.hessian(loss))
        def call():
            return compiled(flat).block_until_ready()
    t0 = time.perf_counter(); h = call(); first = time.perf_counter() - t0
    t0 = time.perf_counter(); h = call(); second = time.perf_counter() - t0
    print(json.dumps({"first": first, "second": second, "trace": float(jnp.trace(h)),
                      "p": int(h.shape[0])}))
    """
)


def _gmsi_rows() -> list[dict[str, object]]:
    import copy

    import torch

    import specinterp as si

    from ._nets import _images, resnet

    net = resnet()
    x, y, _ = _images()
    x, y = x[:16], y[:16]
    net64 = copy.deepcopy(net).double()
    ref = si.gmsi(net64, x.double(), y, tol=1e-10, num_probes=10, num_steps=40, progress=False)
    rows = []
    runs = {
        "specinterp gmsi (defaults)": {},
        "previous defaults (tol=1e-8, SLQ 10 × 40)": {
            "tol": 1e-8,
            "num_probes": 10,
            "num_steps": 40,
        },
    }
    for label, kwargs in runs.items():
        torch.manual_seed(0)
        t0 = time.perf_counter()
        res = si.gmsi(net, x, y, progress=False, **kwargs)
        secs = time.perf_counter() - t0
        comp = {
            k: abs(v - ref.components[k]) / abs(ref.components[k])
            for k, v in res.components.items()
        }
        rows.append(
            {
                "case": "8 gmsi, ResNet-style 75.6k params, 16 images, float32",
                "method": label,
                "seconds": secs,
                "value": res.value,
                "value float64": ref.value,
                "max component rel. diff": max(comp.values()),
                "curvature rel. diff": comp["curvature"],
                "hessian entropy": res.entropies["hessian"],
                "its stated error": res.details["entropy_error"]["hessian"],
                "float64 hessian entropy (10 × 40)": ref.entropies["hessian"],
                "ntk route": res.details["ntk"],
            }
        )
    return rows


def _jax_hessian_rows() -> list[dict[str, object]]:
    out = {who: run_child(JAX_CHILD, [who]) for who in ("specinterp", "jax.jit(jax.hessian)")}
    base = out["jax.jit(jax.hessian)"]
    return [
        {
            "case": f"9 dense Hessian, Equinox MLP p = {r['p']}",
            "method": who,
            "first call s": r["first"],
            "second call s": r["second"],
            "first / jax's first": r["first"] / base["first"],
            "second / jax's second": r["second"] / base["second"],
            "trace rel. diff": abs(r["trace"] - base["trace"]) / abs(base["trace"]),
        }
        for who, r in out.items()
    ]


def _gmsi_above_dense_limit_rows() -> list[dict[str, object]]:
    """Case 8b: ``gmsi`` where ``N·C`` exceeds ``dense_limit`` (the NTK is matrix-free), with
    today's routes and with the previous ones (the NTK's smallest eigenvalue at the default
    20-vector basis, each per-sample block from its own operator), against a dense ``κ(K)``."""
    import numpy as np
    import torch

    import specinterp as si
    from specinterp import stability_index_routes as routes
    from specinterp.operators import ntk_operator

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    x, y = torch.randn(400, 64), torch.randint(0, 10, (400,))
    lam = np.linalg.eigvalsh(si.ntk(net, x).double().numpy())

    def per_sample_blocks(model, x, n, c):
        eye = model.xp.eye(c, dtype=model.dtype)
        return np.stack(
            [
                np.linalg.eigvalsh(ntk_operator(model, x[i : i + 1]).matmat(eye).numpy())
                for i in range(n)
            ]
        )

    real = (routes.BOTTOM_NCV, routes.block_eigenvalues)
    rows = []
    for label, patch in (("today's routes", real), ("previous routes", (20, per_sample_blocks))):
        routes.BOTTOM_NCV, routes.block_eigenvalues = patch
        try:
            t0 = time.perf_counter()
            res = si.gmsi(net, x, y, progress=False)
            secs = time.perf_counter() - t0
        finally:
            routes.BOTTOM_NCV, routes.block_eigenvalues = real
        rows.append(
            {"case": "8b gmsi above dense_limit, MLP 64-256-10, 400 samples (N·C = 4000)"}
            | {"method": label, "seconds": secs, "κ(K)": res.ntk_condition_number}
            | {"dense κ(K) rel. diff": abs(res.ntk_condition_number / (lam[-1] / lam[0]) - 1)}
        )
    return rows


def _gmsi_language_model_rows() -> list[dict[str, object]]:
    """Case 8c: ``gmsi`` with its defaults on a GPT-2-style model, and the exact blocks."""
    import numpy as np
    import torch
    import transformers

    import specinterp as si
    from specinterp import stability_index_routes as routes

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=300,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    net = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 300, (4, 12))
    t0 = time.perf_counter()
    res = si.gmsi(net, ids, ids, progress=False)
    secs = time.perf_counter() - t0
    _, bottom = res.details["ntk"]
    n, c = 4, 12 * 300
    t0 = time.perf_counter()
    blocks = routes.block_eigenvalues(si.as_model(net), ids, n, c)
    block_secs = time.perf_counter() - t0
    s_theta, trace = float(np.sqrt(blocks[:, -1].max())), float(blocks.sum())
    t_est = res.typical["ntk"] ** 2 * n * n * c
    case = "8c gmsi, GPT-2-style LM (vocab 300, 4 × 12 tokens, N·C = 14 400)"
    return [
        {"case": case, "method": "si.gmsi (defaults)", "seconds": secs, "GMSI": res.value}
        | {"κ(K)": res.ntk_condition_number, "λ_min products": bottom.num_matvecs}
        | {"s_θ rel. diff from the blocks": abs(res.components["parameter"] / s_theta - 1)}
        | {
            "tr K estimate − exact, in its std. errors": (t_est - trace)
            / res.details["ntk_trace_error"]
        },
        {"case": case, "method": "exact per-sample blocks (C × C, dense)", "seconds": block_secs},
    ]


def _next_token_jacobian_rows() -> list[dict[str, object]]:
    """Case 8d: next-token Jacobian spectra of a real-vocabulary GPT-2, three ways."""
    import torch
    import transformers
    from torch.func import jacfwd, vmap
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import specinterp as si
    from specinterp.spectrum import Spectrum

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50257, n_positions=64, n_embd=64, n_layer=2, n_head=2)
    net = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 50257, (4, 32))
    view = si.views.output_position(si.as_model(net), ids)

    def recipe() -> torch.Tensor:
        e = net.get_input_embeddings().weight.detach()[ids]

        def last(ei: torch.Tensor) -> torch.Tensor:
            return net(inputs_embeds=ei[None], logits_to_keep=1).logits[0, -1]

        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):  # fused kernels: no forward AD
            jac = vmap(jacfwd(last))(e)  # (N, V, T, d)
        return torch.linalg.svdvals(jac.reshape(4, 50257, -1))

    rows, values = [], {}
    for method in ("specinterp (linear-head factor)", "specinterp (dense route)", "recipe"):
        t0 = time.perf_counter()
        if method == "recipe":
            values[method] = recipe()
        elif "dense" in method:  # the route taken where the factor does not apply
            values[method] = Spectrum.from_matrix(si.input_jacobian(view, ids)).values
        else:
            values[method] = si.jacobian_spectra(view, ids).singular_values
        rows.append({"method": method, "seconds": time.perf_counter() - t0})
    ref = values["recipe"]
    keep = ref > 1e-3 * ref[:, :1]
    case = "8d next-token Jacobian spectra, GPT-2 vocab 50 257 (4 × 32 tokens, d = 2048)"
    for row in rows:
        diff = ((values[row["method"]] - ref).abs() / ref)[keep].max()
        row |= {"case": case, "max rel. diff of σ > 1e-3 σ_1": float(diff)}
    rows[0]["rank (σ > 1e-3 σ_1)"] = int(keep[0].sum())
    return rows


def _torch_hessian_rows() -> list[dict[str, object]]:
    """Case 9b: the dense torch Hessian of a small BERT, three ways (interleaved, medians of 3)."""
    import torch
    import transformers
    from torch.func import functional_call, hessian

    import specinterp as si

    from ._timing import interleaved_runs

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16, num_labels=3,
        attn_implementation="eager",
    )  # fmt: skip
    net = transformers.BertForSequenceClassification(cfg).eval()
    ids, y = torch.randint(1, 30, (16, 6)), torch.randint(0, 3, (16,))
    model = si.as_model(net)

    def recipe() -> torch.Tensor:  # torch.func.hessian over the flat parameters
        def loss(flat: torch.Tensor) -> torch.Tensor:
            z = functional_call(net, model.unflatten(flat), (ids,)).logits
            return torch.nn.functional.cross_entropy(z, y)

        return hessian(loss)(model.flat_params)

    runs = interleaved_runs(
        {
            "si.hessian (vmap over columns)": lambda: si.hessian(model, ids, y, "cross_entropy"),
            "si.hessian(native=False) (p HVPs)": lambda: si.hessian(
                model, ids, y, "cross_entropy", native=False
            ),
            "torch.func.hessian": recipe,
        },
        repeats=3,
        warmup=1,
    )
    # the reference is the reverse-over-reverse route; torch.func.hessian (jacfwd of jacrev)
    # on this BERT is not symmetric: at (position embedding, embedding LayerNorm weight) pairs
    # one of its two entries disagrees with central differences of the gradient (float64)
    ref = runs["si.hessian(native=False) (p HVPs)"][1]
    case = f"9b dense torch Hessian, BERT (p = {model.num_params:,}, 16 × 6 tokens, float32)"
    return [
        {"case": case, "method": name, "seconds": secs}
        | {"max abs diff from the p-HVP route": float((h - ref).abs().max())}
        | {"max |H − Hᵀ|": float((h - h.T).abs().max()), "max |H|": float(ref.abs().max())}
        for name, (secs, h) in runs.items()
    ]


def run(repeats: int = 1) -> list[dict[str, object]]:
    del repeats
    return (
        _gmsi_rows()
        + _gmsi_above_dense_limit_rows()
        + _gmsi_language_model_rows()
        + _next_token_jacobian_rows()
        + _jax_hessian_rows()
        + _torch_hessian_rows()
    )
