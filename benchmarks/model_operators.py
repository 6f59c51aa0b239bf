"""Model-level operators against the torch.func recipes and curvlinops (issue: adapters).

1. Per-sample input-Jacobian spectra, batch 256: MLP 784-512-512-10 and a small CNN on 28×28 —
   specinterp (torch adapter, arraynet product form) vs ``vmap(jacrev)`` + ``svdvals``.
2. Empirical NTK of a batch of 64 (MLP 784-128-128-10): specinterp vs the torch.func recipes
   (Jacobian contraction; NTK-vector products).
3. One Hessian-vector product (MLP 784-128-128-10, batch 256, cross-entropy): specinterp's torch
   and arraynet adapters vs curvlinops' ``HessianLinearOperator`` (if installed).
All in float32 on the CPU, timed interleaved in one process.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from specinterp.adapters import arraynet as an
from torch.func import functional_call, jacrev, jvp, vjp, vmap

import specinterp as si

from ._peers import curvlinops_hessian
from ._timing import interleaved_medians


def _mlp(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


def _cnn(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 14 * 14, 10),
    ).eval()


def _recipe_jacobian_spectra(net, x):
    params = {k: v.detach() for k, v in net.named_parameters()}

    def single(xi):
        return functional_call(net, params, (xi[None],))[0]

    jac = vmap(jacrev(single))(x).reshape(x.shape[0], 10, -1)
    return torch.linalg.svdvals(jac)


def _jacobian_cases(repeats):
    rows = []
    rng = np.random.default_rng(0)
    for name, net, shape in (
        ("mlp-784-512-512-10", _mlp([784, 512, 512, 10]), (784,)),
        ("cnn-28x28", _cnn(), (1, 28, 28)),
    ):
        x_np = rng.standard_normal((256, *shape)).astype(np.float32)
        x = torch.as_tensor(x_np)
        model = si.as_model(net)
        anet = si.as_model(an.from_torch(net))
        cands = {
            "torch.func recipe": lambda net=net, x=x: _recipe_jacobian_spectra(net, x),
            "specinterp torch": lambda m=model, x=x: si.Spectrum.from_matrix(
                si.input_jacobian(m, x)
            ).entropy(),
            "specinterp arraynet": lambda m=anet, x=x_np: si.Spectrum.from_matrix(
                si.input_jacobian(m, x)
            ).entropy(),
        }
        med = interleaved_medians(cands, repeats=repeats)
        best_peer = med["torch.func recipe"]
        for k, v in med.items():
            rows.append(
                {
                    "case": "input_jacobian_spectra",
                    "model": name,
                    "method": k,
                    "median_s": v,
                    "ratio_to_recipe": v / best_peer,
                }
            )
    return rows


def _ntk_cases(repeats):
    net = _mlp([784, 128, 128, 10])
    x = torch.as_tensor(np.random.default_rng(1).standard_normal((64, 784)).astype(np.float32))
    params = {k: v.detach() for k, v in net.named_parameters()}

    def f(p, xb):
        return functional_call(net, p, (xb,))

    def contraction():
        jac = vmap(jacrev(lambda p, xi: f(p, xi[None])[0]), in_dims=(None, 0))(params, x)
        flat = torch.cat([j.reshape(64, 10, -1) for j in jac.values()], dim=2)
        return torch.einsum("iap,jbp->iajb", flat, flat).reshape(640, 640)

    def ntk_vps():
        def single(x1, x2):
            f1 = lambda p: f(p, x1[None])[0]  # noqa: E731
            f2 = lambda p: f(p, x2[None])[0]  # noqa: E731
            _, vjp_fn = vjp(f2, params)

            def get(vec):
                return jvp(f1, (params,), vjp_fn(vec))[1]

            return vmap(get)(torch.eye(10))

        return vmap(vmap(single, (None, 0)), (0, None))(x, x)

    model = si.as_model(net)
    med = interleaved_medians(
        {
            "jacobian contraction": contraction,
            "ntk-vector products": ntk_vps,
            "specinterp torch": lambda: si.ntk(model, x),
        },
        repeats=repeats,
    )
    best = min(med["jacobian contraction"], med["ntk-vector products"])
    return [
        {
            "case": "ntk_batch64",
            "model": "mlp-784-128-128-10",
            "method": k,
            "median_s": v,
            "ratio_to_best_recipe": v / best,
        }
        for k, v in med.items()
    ]


def _hvp_cases(repeats):
    net = _mlp([784, 128, 128, 10])
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal((256, 784)).astype(np.float32)
    y_np = rng.integers(0, 10, 256)
    x, y = torch.as_tensor(x_np), torch.as_tensor(y_np)
    model = si.as_model(net)
    anet = si.as_model(an.from_torch(net))
    v = torch.as_tensor(rng.standard_normal(model.num_params).astype(np.float32))
    v_np = v.numpy()
    t_op = si.hessian_operator(model, x, y, "cross_entropy")  # reuses one gradient graph
    a_op = si.hessian_operator(anet, x_np, y_np, "cross_entropy")  # reuses the forward pass
    cands = {
        "specinterp torch (model.hvp)": lambda: model.hvp(x, y, v, "cross_entropy"),
        "specinterp torch (hessian_operator)": lambda: t_op.matvec(v),
        "specinterp arraynet (model.hvp)": lambda: anet.hvp(x_np, y_np, v_np, "cross_entropy"),
        "specinterp arraynet (hessian_operator)": lambda: a_op.matvec(v_np),
    }
    try:
        hop = curvlinops_hessian(net, x, y)
        cands["curvlinops"] = lambda: hop @ v
        ref = (hop @ v).detach().numpy()
        got = model.hvp(x, y, v, "cross_entropy").numpy()
        agree = float(np.max(np.abs(ref - got)) / np.max(np.abs(ref)))
    except ImportError:
        agree = float("nan")
    med = interleaved_medians(cands, repeats=repeats)
    base = med.get("curvlinops", med["specinterp torch (model.hvp)"])
    return [
        {
            "case": "hvp",
            "model": "mlp-784-128-128-10 batch 256",
            "method": k,
            "median_s": t,
            "ratio_to_curvlinops": t / base,
            "max_rel_diff_vs_curvlinops": agree,
        }
        for k, t in med.items()
    ]


def run(repeats: int = 7) -> list[dict[str, object]]:
    return _jacobian_cases(repeats) + _ntk_cases(repeats) + _hvp_cases(repeats)
