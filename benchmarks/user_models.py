"""The GMSI and dense Hessians as a user runs them (issue: performance 2).

Case 8 — ``si.gmsi`` with its defaults on a ResNet-style model (``benchmarks._nets.resnet``:
75.6 k parameters, convolutions, BatchNorm in eval mode, residual adds; 16 images, float32,
cross-entropy), against a float64 copy of the same network at tolerance 1e-10: every
component's relative difference next to the tolerance the float32 run states (Lanczos at
``√eps`` = 3.5e-4; the dense NTK to float32 rounding). Also the same call with the previous
defaults (``tol=1e-8``, 10 SLQ probes × 40 steps).

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


def run(repeats: int = 1) -> list[dict[str, object]]:
    del repeats
    return _gmsi_rows() + _jax_hessian_rows()
