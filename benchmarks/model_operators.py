"""Model-level operators against the torch.func / JAX recipes and curvlinops.

Case 4 — empirical NTK (``N·C × N·C``) of a batch of 64 and of 256, trained MLP 784-128-10:
specinterp (torch, JAX and arraynet adapters) vs the torch.func recipes of the torch.func
tutorial (Jacobian contraction; NTK-vector products) and JAX's ``vmap(jacrev)`` contraction
under ``jit``. The NTK-vector-product recipe costs ``N²·C`` VJPs and JVPs (15 s at batch 64
here), so it runs at batch 64 only. specinterp's torch and arraynet adapters take the
layer-wise route (the network is an ``nn.Sequential`` MLP); its JAX model is a plain function
of a weight list, so it takes the compiled ``vmap(jacrev)`` + Gram program.

Case 5b — the same statistics on the JAX MLPs at batch 64 and 256 against a jitted
``vmap(jacrev)`` + ``svd`` + entropy recipe.

Case 5 — per-sample input-Jacobian spectra (the §1 spectral entropy of each ``C × d``
Jacobian) of 1024 inputs: MLPs 784-128-10 and 784-512-512-10, CNNs on 3×32×32 with 16 and 64
channels: ``specinterp.jacobian_spectra`` (all eight statistics; torch adapter, and the
arraynet copy of the same weights, which uses the product form for MLPs) vs ``vmap(jacrev)`` +
``svdvals`` + the entropy.

Also one Hessian-vector product (MLP 784-512-512-10, batch 256, cross-entropy) against
curvlinops' ``HessianLinearOperator``.

All float32 on the CPU, medians of interleaved repeats in one process; ``products`` counts the
operator applications of each method (VJP/JVP: vector-Jacobian / Jacobian-vector products,
one per sample and output unless batched; "batched" means one pass over the whole batch).
"""

from __future__ import annotations

import numpy as np
import torch
from specinterp.adapters import arraynet as an
from specinterp.adapters._torch_hvp import gradient_graph_hvp  # the route of other modules
from torch.func import functional_call, jacrev, jvp, vjp, vmap

import specinterp as si

from ._nets import CNN_SIZES, MLP_SIZES, trained
from ._peers import curvlinops_hessian
from ._timing import interleaved_medians

C = 10


def _rows(case, model, med, base_key, products, **extra):
    base = med[base_key]
    return [
        {"case": case, "model": model, **extra, "method": k, "products": products[k]}
        | {"median_s": v, f"ratio_to {base_key}": v / base}
        for k, v in med.items()
    ]


# ---------------------------------------------------------------------- case 5
def _recipe_spectra(net, x):
    params = {k: v.detach() for k, v in net.named_parameters()}

    def single(xi):
        return functional_call(net, params, (xi[None],))[0]

    jac = vmap(jacrev(single))(x).reshape(x.shape[0], C, -1)
    s = torch.linalg.svdvals(jac)
    p = s**2 / (s**2).sum(-1, keepdim=True)
    return -(p * torch.log(p)).sum(-1)


def _jacobian_cases(repeats, n=1024):
    rows = []
    for name in [*MLP_SIZES, *CNN_SIZES]:
        bench = trained(name)
        x = bench.x[:n]
        x_np = x.numpy()
        model, anet = si.as_model(bench.net), si.as_model(an.from_torch(bench.net))
        mlp = name in MLP_SIZES
        med = interleaved_medians(
            {
                "vmap(jacrev) + svdvals": lambda net=bench.net, x=x: _recipe_spectra(net, x),
                "specinterp torch": lambda m=model, x=x: si.jacobian_spectra(m, x).entropy,
                "specinterp arraynet": lambda m=anet, x=x_np: si.jacobian_spectra(m, x).entropy,
            },
            repeats=repeats,
        )
        products = {
            "vmap(jacrev) + svdvals": f"{n}·{C} VJPs (vmap)",
            "specinterp torch": f"{n}·{C} VJPs (vmap)",
            "specinterp arraynet": "1 forward, product form (C × n_1 factors)"
            if mlp
            else f"1 forward, {C} batched input VJPs, C × C R factors",
        }
        rows += _rows(
            "5 input-Jacobian spectra",
            name,
            med,
            "vmap(jacrev) + svdvals",
            products,
            inputs=n,
        )
    return rows


# ---------------------------------------------------------------------- case 5c
def _param_jacobian_cases(repeats, n=64):
    """Case 5c: the dense parameter Jacobian ``(N, C, p)`` against ``vmap(jacrev)``."""
    rows = []
    for name in ["mlp-784-128-10", "cnn-3x32x32-c16"]:
        bench = trained(name)
        x = bench.x[:n]
        params = {k: v.detach() for k, v in bench.net.named_parameters()}

        def recipe(net=bench.net, params=params, x=x):
            def single(p, xi):
                return functional_call(net, p, (xi[None],))[0]

            jac = vmap(jacrev(single), in_dims=(None, 0))(params, x)
            return torch.cat([j.reshape(n, C, -1) for j in jac.values()], dim=2)

        model, anet = si.as_model(bench.net), si.as_model(an.from_torch(bench.net))
        x_np = x.numpy()
        med = interleaved_medians(
            {
                "vmap(jacrev)": recipe,
                "specinterp torch": lambda m=model, x=x: si.param_jacobian(m, x),
                "specinterp arraynet": lambda m=anet, x=x_np: si.param_jacobian(m, x),
            },
            repeats=repeats,
        )
        products = {
            "vmap(jacrev)": f"{n}·{C} VJPs (vmap)",
            "specinterp torch": f"{n}·{C} VJPs (vmap)",
            "specinterp arraynet": f"{C} batch-last passes, per-layer blocks for all {C}",
        }
        rows += _rows("5c parameter Jacobian", name, med, "vmap(jacrev)", products, inputs=n)
    return rows


# ---------------------------------------------------------------------- case 4
def _torch_recipes(net, x):
    params = {k: v.detach() for k, v in net.named_parameters()}
    n = x.shape[0]

    def f(p, xb):
        return functional_call(net, p, (xb,))

    def contraction():
        jac = vmap(jacrev(lambda p, xi: f(p, xi[None])[0]), in_dims=(None, 0))(params, x)
        flat = torch.cat([j.reshape(n, C, -1) for j in jac.values()], dim=2)
        return torch.einsum("iap,jbp->iajb", flat, flat).reshape(n * C, n * C)

    def ntk_vps():
        def single(x1, x2):
            _, vjp_fn = vjp(lambda p: f(p, x2[None])[0], params)

            def get(vec):
                return jvp(lambda p: f(p, x1[None])[0], (params,), vjp_fn(vec))[1]

            return vmap(get)(torch.eye(C))

        return vmap(vmap(single, (None, 0)), (0, None))(x, x)

    return contraction, ntk_vps


def _jax_parts(net, x):
    """The same MLP as a JAX function of a weight pytree, and the jitted contraction recipe."""
    import jax
    import jax.numpy as jnp
    from specinterp.adapters.jax import JaxModel

    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    params = [
        (jnp.asarray(m.weight.numpy(force=True)), jnp.asarray(m.bias.numpy(force=True)))
        for m in lin
    ]

    def f(p, xb):
        for i, (w, b) in enumerate(p):
            xb = xb @ w.T + b
            if i < len(p) - 1:
                xb = jax.nn.relu(xb)
        return xb

    n = x.shape[0]

    @jax.jit
    def contraction(p, xb):
        jac = jax.vmap(jax.jacrev(lambda q, xi: f(q, xi[None])[0]), in_axes=(None, 0))(p, xb)
        flat = jnp.concatenate([j.reshape(n, C, -1) for j in jax.tree_util.tree_leaves(jac)], 2)
        return jnp.einsum("iap,jbp->iajb", flat, flat).reshape(n * C, n * C)

    xj = jnp.asarray(x.numpy())
    return (
        lambda: contraction(params, xj).block_until_ready(),
        JaxModel(f, params),
        xj,
    )


def _ntk_cases(repeats, name="mlp-784-128-10"):
    rows = []
    bench = trained(name)
    for n in (64, 256):
        x = bench.x[:n]
        contraction, ntk_vps = _torch_recipes(bench.net, x)
        model, anet = si.as_model(bench.net), si.as_model(an.from_torch(bench.net))
        x_np = x.numpy()
        cands = {"torch.func jacobian contraction": contraction}
        products = {"torch.func jacobian contraction": f"{n}·{C} VJPs (vmap)"}
        if n <= 64:
            cands["torch.func ntk-vector products"] = ntk_vps
            products["torch.func ntk-vector products"] = f"{n}²·{C} VJPs + JVPs (vmap)"
        cands["specinterp torch"] = lambda m=model, x=x: si.ntk(m, x)
        products["specinterp torch"] = "structured: layer Grams (no G)"
        cands["specinterp arraynet"] = lambda m=anet, x=x_np: si.ntk(m, x)
        products["specinterp arraynet"] = "structured: layer Grams (no G)"
        try:
            jax_recipe, jmodel, xj = _jax_parts(bench.net, x)
            cands["jax jacrev contraction (jit)"] = jax_recipe
            products["jax jacrev contraction (jit)"] = f"{n}·{C} VJPs (vmap)"
            cands["specinterp jax"] = lambda m=jmodel, x=xj: si.ntk(m, x).block_until_ready()
            products["specinterp jax"] = f"{n}·{C} VJPs (vmap), Gram in the same program"
        except ImportError:
            pass
        med = interleaved_medians(cands, repeats=repeats, warmup=1)
        best = min(v for k, v in med.items() if k.startswith("torch.func"))
        for row in _rows(
            f"4 NTK batch {n}", name, med, "torch.func jacobian contraction", products
        ):
            row["ratio_to_best_torch_recipe"] = row["median_s"] / best
            rows.append(row)
    return rows


# ---------------------------------------------------------------------- one HVP
def _hvp_cases(repeats):
    rows = []
    for name in (*MLP_SIZES, *CNN_SIZES):
        rows += _hvp_case(repeats, name)
    return rows


def _hvp_case(repeats, name):
    """One HVP at batch 256: the layer-wise R-operator (the ``hessian_operator`` of an
    ``nn.Sequential`` MLP or CNN), an MLP's product on the first layer's input span (what
    ``eigsh`` runs), the gradient graph every other torch module reuses, and the peers'."""
    bench = trained(name)
    x, y = bench.batch(256)
    x_np, y_np = x.numpy(), y.numpy()
    model, anet = si.as_model(bench.net), si.as_model(an.from_torch(bench.net))
    v = torch.as_tensor(
        np.random.default_rng(2).standard_normal(model.num_params).astype(np.float32)
    )
    v_np = v.numpy()
    t_op = si.hessian_operator(model, x, y, "cross_entropy")
    comp = t_op.compression()  # an MLP's (fewer samples than inputs); none for the CNNs
    graph = gradient_graph_hvp(
        lambda p: torch.nn.functional.cross_entropy(functional_call(bench.net, p, (x,)), y),
        model.params,
        model.unflatten,
    )
    a_op = si.hessian_operator(anet, x_np, y_np, "cross_entropy")  # reuses the forward pass
    cands = {
        "specinterp torch (model.hvp)": lambda: model.hvp(x, y, v, "cross_entropy"),
        "specinterp torch (hessian_operator: R-operator)": lambda: t_op.matvec(v),
        "specinterp torch (gradient graph: other modules)": lambda: graph(v),
        "specinterp arraynet (model.hvp)": lambda: anet.hvp(x_np, y_np, v_np, "cross_entropy"),
        "specinterp arraynet (hessian_operator)": lambda: a_op.matvec(v_np),
    }
    if comp is not None:
        small, v_small = comp.operator, torch.randn(comp.operator.shape[0])
        label = f"specinterp torch (compressed, {small.shape[0]} coordinates)"
        cands[label] = lambda: small.matvec(v_small)
    products = dict.fromkeys(cands, "1 HVP")
    base = "specinterp torch (model.hvp)"
    try:
        hop = curvlinops_hessian(bench.net, x, y)
        cands["curvlinops"] = lambda: hop @ v
        products["curvlinops"] = "1 HVP"
        base = "curvlinops"
    except ImportError:
        pass
    try:
        from pyhessian.utils import hessian_vector_product

        params = list(bench.net.parameters())
        loss = torch.nn.functional.cross_entropy(bench.net(x), y)
        keep = torch.autograd.grad(loss, params, create_graph=True)  # as PyHessian keeps it
        sizes = [p.numel() for p in params]
        parts = [t.reshape(p.shape) for t, p in zip(v.split(sizes), params, strict=True)]
        cands["PyHessian"] = lambda: hessian_vector_product(keep, params, parts)
        products["PyHessian"] = "1 HVP"
    except ImportError:
        pass
    med = interleaved_medians(cands, repeats=repeats)
    return _rows("hvp batch 256", name, med, base, products)


def _jax_spectra_cases(repeats):
    """Case 5b: JAX per-sample Jacobian entropies at batch 64 and 256 vs the jitted recipe."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return []
    rows = []
    for name in MLP_SIZES:
        bench = trained(name)
        for n in (64, 256):
            _, jm, xj = _jax_parts(bench.net, bench.x[:n])

            @jax.jit
            def recipe(t, xx, jm=jm):
                j = jax.vmap(jax.jacrev(lambda xi: jm._f(t, xi[None])[0]))(xx)
                s = jnp.linalg.svd(j, compute_uv=False)
                p = s**2 / (s**2).sum(-1, keepdims=True)
                return -(p * jnp.log(p)).sum(-1)

            cands = {
                "jax vmap(jacrev) + svd (jit)": lambda r=recipe, m=jm, x=xj: r(
                    m.flat, x
                ).block_until_ready(),
                "specinterp jax": lambda m=jm, x=xj: si.jacobian_spectra(
                    m, x
                ).entropy.block_until_ready(),
            }
            products = {
                "jax vmap(jacrev) + svd (jit)": f"{n}·{C} VJPs (vmap), entropy only",
                "specinterp jax": f"{n}·{C} VJPs (vmap), R-SVD, all eight statistics",
            }
            med = interleaved_medians(cands, repeats=max(repeats, 9), warmup=2)
            rows += _rows(
                f"5b JAX input-Jacobian spectra, batch {n}",
                name,
                med,
                "jax vmap(jacrev) + svd (jit)",
                products,
            )
    return rows


def run(repeats: int = 7) -> list[dict[str, object]]:
    return (
        _jacobian_cases(repeats)
        + _param_jacobian_cases(repeats)
        + _jax_spectra_cases(repeats)
        + _ntk_cases(repeats)
        + _hvp_cases(repeats)
    )
