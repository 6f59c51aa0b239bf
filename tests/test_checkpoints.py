"""Checkpoint sweeps: every quantity equals its direct computation at each checkpoint (dense
float64 truth for the Hessian and the NTK), warm starts change the products spent and not the
values, an executor gives the same table, and every checkpoint form loads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

import specinterp as si
from specinterp.checkpoints import checkpoint_sweep, model_at


@pytest.fixture(scope="module")
def run():
    x, y = si.datasets.load_digits()
    x, y = x[:900], y[:900]
    net = an.init_mlp((64, 16, 10), seed=0)
    ckpts = [net.params]
    for e in range(4):
        net = an.train(net, x, y, epochs=1, lr=3e-3, seed=e)
        ckpts.append(net.params)
    data = [(x[i : i + 300], y[i : i + 300]) for i in range(0, 900, 300)]
    return an.init_mlp((64, 16, 10), seed=1), ckpts, data, x, y


def test_values_are_the_direct_ones_and_warm_starts_only_save_products(run):
    template, ckpts, data, x, y = run
    q = ("hessian_top", "ntk_condition", "jacobian_entropy")
    kw = {"quantities": q, "ntk_samples": 8}  # 8 · 10 NTK rows: full rank, κ finite
    warm = checkpoint_sweep(template, ckpts, data, "cross_entropy", **kw)
    cold = checkpoint_sweep(template, ckpts, data, "cross_entropy", warm_start=False, **kw)
    for i, params in enumerate(ckpts):
        m = si.as_model(template.with_params(params))
        h = np.asarray(si.hessian(m, x, y, "cross_entropy"))  # all 900 digits, dense float64
        assert warm.values["hessian_top"][i] == pytest.approx(np.linalg.eigvalsh(h)[-1], rel=1e-6)
        s = np.linalg.svd(np.asarray(si.ntk(m, x[:8])), compute_uv=False)  # K ⪰ 0: σ = λ
        assert warm.values["ntk_condition"][i] == pytest.approx(s[0] / s[-1], rel=1e-6)
        ent = np.mean(np.asarray(si.jacobian_spectra(m, x[:8]).entropy))
        assert warm.values["jacobian_entropy"][i] == pytest.approx(ent, rel=1e-12)
    np.testing.assert_allclose(warm.values["hessian_top"], cold.values["hessian_top"], rtol=1e-6)
    assert sum(warm.num_matvecs["hessian_top"]) <= sum(cold.num_matvecs["hessian_top"])
    with ThreadPoolExecutor(2) as pool:
        par = checkpoint_sweep(template, ckpts, data, "cross_entropy", executor=pool, **kw)
    for k in q:
        np.testing.assert_allclose(par.values[k], cold.values[k], rtol=1e-12)
    assert list(warm.as_frame().index) == [0, 1, 2, 3, 4]


def test_checkpoint_forms(run, tmp_path):
    torch = pytest.importorskip("torch")
    template, ckpts, data, _, _ = run
    path = tmp_path / "epoch3.npz"
    np.savez(path, **{f"p{i}": p for i, p in enumerate(ckpts[3])})
    a = model_at(template, path)
    np.testing.assert_array_equal(
        np.asarray(a.flat_params), np.asarray(model_at(template, ckpts[3]).flat_params)
    )
    tnet = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    state = {k: v.clone() + 1.0 for k, v in tnet.state_dict().items()}
    torch.save(state, tmp_path / "step.pt")
    loaded = model_at(tnet, tmp_path / "step.pt")
    torch.testing.assert_close(loaded.flat_params, torch.cat([v.ravel() for v in state.values()]))
    assert not torch.equal(si.as_model(tnet).flat_params, loaded.flat_params)  # template kept
    with pytest.raises(ValueError, match="quantities"):
        checkpoint_sweep(template, ckpts, data, "cross_entropy", quantities=("loss",))


def test_checkpoints_command(tmp_path):
    # one command: train the built-in MLP for 2 epochs and write the sweep; epoch 0's top
    # Hessian eigenvalue is that of the initial network on every training digit (dense truth)
    import json

    from specinterp.cli import main
    from specinterp.report.builtin import WIDTHS

    assert main(["checkpoints", "--epochs", "2", "--out", str(tmp_path), "--quiet"]) == 0
    got = json.loads((tmp_path / "checkpoints.json").read_text())
    assert got["epoch"] == [0, 1, 2]
    assert set(got) == {"epoch", "hessian_top", "ntk_condition", "jacobian_entropy"}
    x, y = si.datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(y))
    train = order[len(y) // 5 :]
    m = si.as_model(an.init_mlp(WIDTHS, seed=0))
    op = si.hessian_operator(m, x[train], y[train], "cross_entropy")
    top = float(np.asarray(si.linalg.eigsh(op, 1, tol=1e-10).values)[0])
    assert got["hessian_top"][0] == pytest.approx(top, rel=1e-6)
    assert "<img" in (tmp_path / "checkpoints.html").read_text()
    assert main(["checkpoints", "--epochs", "0", "--out", str(tmp_path), "--quiet"]) == 2
    assert main(["checkpoints", "--seed", "-1", "--out", str(tmp_path), "--quiet"]) == 2
