"""The structured (layer-wise) NTK against the Jacobian-contraction recipes, and how it scales.

Case 7 — empirical NTK ``(N·C × N·C)`` of a 784-1024-1024-10 ReLU MLP (1.86 M parameters) on
MNIST-5k images, float32: specinterp (torch, arraynet, JAX/Equinox with the same weights; all
take the layer-wise route, docs/theory.md#theory-structured-ntk) against the recipes that form
``G``: torch.func ``vmap(jacrev)`` + contraction, JAX's jitted ``vmap(jacrev)`` + contraction,
arraynet's own ``G`` (``param_jacobian``) + ``G Gᵀ``. Each method runs in a fresh process (its
peak resident memory above the model is its own) with an address-space limit
(``SPECINTERP_BENCH_MEMORY_GB``, default 16): a recipe whose ``G`` does not fit fails with its
allocation error, which is recorded. At batch 32 every method runs and the NTKs are compared.

Scaling — time of the structured NTK and of Hessian top-5 (``eigsh``, tol 1e-3, cross-entropy)
against batch (64, 128, 256; width 512) and width (256, 512, 1024; batch 128) of 784-n-n-10
MLPs; the fitted log-log slope next to the slope of the flop count over the same points.
"""

from __future__ import annotations

import itertools
import os
import textwrap

import numpy as np

from ._timing import run_child

C = 10
WIDTHS = (784, 1024, 1024, 10)

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    spec = json.loads(sys.argv[1])
    limit = int(spec["memory_gb"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def peak_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

    import numpy as np
    import torch
    from benchmarks.structured_ntk import build, method
    torch.set_num_threads(2)
    fn, finish = method(spec["method"], *build(spec["widths"], spec["n"]))
    with open("/proc/self/clear_refs", "w") as f:  # the peak from here on (Linux ≥ 4.0)
        f.write("5")
    base = rss_mb()
    times, out = [], None
    try:
        fn()  # warm-up (the memory it needs counts: the peak is over the whole run)
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            out = finish(fn())
            times.append(time.perf_counter() - t0)
    except Exception as exc:  # the allocation failure of a G that does not fit
        print(json.dumps({"failed": str(exc).splitlines()[0][:160]}))
        sys.exit(0)
    if spec.get("save"):
        np.save(spec["save"], out)
    print(json.dumps({"seconds": sorted(times)[len(times) // 2], "peak_mb": peak_mb() - base}))
    """
)


def build(widths: list[int], n: int) -> tuple[torch.nn.Module, torch.Tensor]:  # noqa: F821
    """An untrained ReLU MLP of the given widths (seed 0) and ``n`` MNIST-5k images."""
    import torch

    from benchmarks._nets import shuffled_mnist5k

    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).eval()
    x, _ = shuffled_mnist5k()
    x = (x - x.mean()) / x.std()
    return net, torch.as_tensor(x[:n], dtype=torch.float32)


def _equinox(net: torch.nn.Module) -> object:  # noqa: F821
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    lin = [m for m in net if hasattr(m, "weight")]
    mlp = eqx.nn.MLP(
        lin[0].in_features, lin[-1].out_features, lin[0].out_features, len(lin) - 1,
        activation=jax.nn.relu, key=jax.random.PRNGKey(0),
    )  # fmt: skip
    for i, m in enumerate(lin):
        mlp = eqx.tree_at(lambda t, i=i: t.layers[i].weight, mlp, jnp.asarray(m.weight.detach()))
        mlp = eqx.tree_at(lambda t, i=i: t.layers[i].bias, mlp, jnp.asarray(m.bias.detach()))
    return mlp


def method(name: str, net: object, x: object) -> tuple[object, object]:
    """``(call, to_numpy)`` of one method on ``net`` at ``x`` (compiled ones warmed up)."""
    import torch
    from specinterp.adapters import arraynet as an

    import specinterp as si

    n, as_np = int(x.shape[0]), np.asarray
    if name == "specinterp torch":
        m = si.as_model(net)
        return (lambda: si.ntk(m, x)), (lambda k: k.numpy())
    if name == "specinterp arraynet":
        m, xn = si.as_model(an.from_torch(net)), x.numpy()
        return (lambda: si.ntk(m, xn)), as_np
    if name == "arraynet contraction":
        m, xn = si.as_model(an.from_torch(net)), x.numpy()

        def contraction() -> np.ndarray:
            g = np.reshape(m.param_jacobian(xn), (n * C, -1))
            return g @ g.T

        return contraction, as_np
    if name == "torch.func contraction":
        from torch.func import functional_call, jacrev, vmap

        params = {k: v.detach() for k, v in net.named_parameters()}

        def recipe() -> torch.Tensor:
            def single(p: dict, xi: torch.Tensor) -> torch.Tensor:
                return functional_call(net, p, (xi[None],))[0]

            jac = vmap(jacrev(single), in_dims=(None, 0))(params, x)
            g = torch.cat([j.reshape(n * C, -1) for j in jac.values()], dim=1)
            return g @ g.T

        return recipe, (lambda k: k.numpy())
    import jax
    import jax.numpy as jnp

    mlp, xj = _equinox(net), jnp.asarray(x.numpy())
    if name == "specinterp jax":
        m = si.as_model(mlp)
        si.ntk(m, xj).block_until_ready()
        return (lambda: si.ntk(m, xj).block_until_ready()), as_np
    if name == "jax vmap(jacrev) contraction (jit)":
        import equinox as eqx

        params, static = eqx.partition(mlp, eqx.is_inexact_array)

        @jax.jit
        def recipe(p: object, xb: jax.Array) -> jax.Array:
            def single(q: object, xi: jax.Array) -> jax.Array:
                return eqx.combine(q, static)(xi)

            jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(p, xb)
            leaves = jax.tree_util.tree_leaves(jac)
            g = jnp.concatenate([j.reshape(n * C, -1) for j in leaves], axis=1)
            return g @ g.T

        recipe(params, xj).block_until_ready()
        return (lambda: recipe(params, xj).block_until_ready()), as_np
    raise KeyError(name)


#: each method, and the library whose recipe it is compared with
METHODS = {
    "specinterp torch": "torch",
    "torch.func contraction": "torch",
    "specinterp arraynet": "arraynet",
    "arraynet contraction": "arraynet",
    "specinterp jax": "jax",
    "jax vmap(jacrev) contraction (jit)": "jax",
}


def _child(spec: dict) -> dict:
    spec = {"memory_gb": float(os.environ.get("SPECINTERP_BENCH_MEMORY_GB", 16)), **spec}
    try:
        return run_child(CHILD, spec)
    except RuntimeError as exc:  # killed, or failed outside the timed calls
        return {"failed": str(exc).strip().splitlines()[-1][:160]}


def _ntk_rows(repeats: int) -> list[dict[str, object]]:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # batch 32: every method runs; the NTKs against the float64 torch.func contraction
        ks = {}
        for name in METHODS:
            path = os.path.join(tmp, f"{len(ks)}.npy")
            res = _child({"method": name, "widths": WIDTHS, "n": 32, "repeats": 1, "save": path})
            ks[name] = np.load(path) if "seconds" in res else None
        ref = ks["torch.func contraction"].astype(np.float64)
        for name, k in ks.items():
            err = np.abs(k - ref).max() / np.abs(ref).max() if k is not None else None
            rows.append({"case": "7 NTK equality, batch 32", "method": name, "rel_error": err})
        for n in (64, 256):
            results = {
                name: _child({"method": name, "widths": WIDTHS, "n": n, "repeats": repeats})
                for name in METHODS
            }
            recipe = {
                lib: results[k].get("seconds")
                for k, lib in METHODS.items()
                if not k.startswith("specinterp")
            }
            for name, r in results.items():
                base = recipe[METHODS[name]]
                rows.append(
                    {
                        "case": f"7 NTK 784-1024-1024-10, batch {n}",
                        "method": name,
                        "median_s": r.get("seconds"),
                        "peak_mb": r.get("peak_mb"),
                        "recipe / this": base / r["seconds"] if base and "seconds" in r else None,
                        "failed": r.get("failed"),
                    }
                )
    return rows


def _fit(xs: list[float], ys: list[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def _scaling_rows(repeats: int) -> list[dict[str, object]]:
    import time

    import specinterp as si

    rows = []
    points = {
        "batch": [((784, 512, 512, 10), n) for n in (64, 128, 256)],
        "width": [((784, w, w, 10), 128) for w in (256, 512, 1024)],
    }
    for axis, grid in points.items():
        ntk_t, hess_t, hess_per, flops_k, flops_h = [], [], [], [], []
        for widths, n in grid:
            net, x = build(list(widths), n)
            y = torch_labels(n)
            si.ntk(net, x)
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                si.ntk(net, x)
                ts.append(time.perf_counter() - t0)
            ntk_t.append(float(np.median(ts)))
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                op = si.hessian_operator(net, x, y, "cross_entropy")
                res = si.linalg.eigsh(op, 5, tol=1e-3)
                ts.append(time.perf_counter() - t0)
            hess_t.append(float(np.median(ts)))
            hess_per.append(hess_t[-1] / res.num_matvecs)
            layers = list(itertools.pairwise(widths))
            sig = n * C * sum(a * b for a, b in layers[1:])  # signals: N·C·Σ n_l n_{l−1}
            grams = (n * C) ** 2 * sum(b for _, b in layers[:-1]) + n * n * sum(widths[:-1])
            flops_k.append(sig + grams)
            flops_h.append(n * sum(a * b for a, b in layers))  # one HVP: ∝ N·p
        xs = [n for _, n in grid] if axis == "batch" else [w[1] for w, _ in grid]
        for what, ts, flops in (
            ("NTK (structured)", ntk_t, flops_k),
            ("Hessian top-5, seconds", hess_t, flops_h),
            ("Hessian top-5, seconds per HVP", hess_per, flops_h),
        ):
            rows.append(
                {
                    "case": f"scaling with {axis}",
                    "quantity": what,
                    "points": xs,
                    "seconds": [round(t, 4) for t in ts],
                    "fitted exponent": round(_fit(xs, ts), 2),
                    "flop-count exponent": round(_fit(xs, flops), 2),
                }
            )
    return rows


def torch_labels(n: int) -> object:
    import torch

    from benchmarks._nets import shuffled_mnist5k

    return torch.as_tensor(shuffled_mnist5k()[1][:n])


def run(repeats: int = 3) -> list[dict[str, object]]:
    if os.environ.get("SPECINTERP_BENCH_PART") == "scaling":
        return _scaling_rows(repeats)
    return _ntk_rows(repeats) + _scaling_rows(repeats)
