"""One weight-spectra table for any framework: values against dense eigenvalues, a planted
(learned-like) spike that dies under shuffling, a correlation trap that survives it, and the
same table from torch, JAX and arraynet holding the same weights."""

from __future__ import annotations

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

from specinterp import rmt
from specinterp.errors import ModelError


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    # layer 1: Gaussian bulk plus a rank-one spike far above the BBP threshold (structure)
    w1 = rng.standard_normal((120, 240)) / np.sqrt(240)
    u, v = rng.standard_normal(120), rng.standard_normal(240)
    w1 += 3.0 * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    # layer 2: Gaussian bulk with one huge entry (a correlation trap: survives shuffling)
    w2 = rng.standard_normal((60, 120)) / np.sqrt(120)
    w2[3, 7] = 12.0
    return w1, w2


def test_table_values_and_spikes():
    w1, w2 = _weights()
    net = an.Sequential([an.Dense(w1), an.ReLU(), an.Dense(w2)])
    rows = rmt.model_layers(net, num_bootstrap=0, as_frame=False)
    assert [r["shape"] for r in rows] == [(120, 240), (60, 120)]
    for r, w in zip(rows, (w1, w2), strict=True):
        lam = np.linalg.eigvalsh(w @ w.T / w.shape[1])  # m ≤ n orientation, dense truth
        assert r["lambda_max"] == pytest.approx(lam[-1], rel=1e-10)
        assert r["stable_rank"] == pytest.approx(np.sum(lam) / lam[-1], rel=1e-10)
    spike, trap = rows
    assert spike["num_spikes"] >= 1 and spike["num_spikes_randomized"] == 0
    assert trap["num_spikes"] >= 1 and trap["num_spikes_randomized"] >= 1
    assert {"alpha", "alpha_status", "power_law_supported", "alpha_weighted"} <= set(spike)


def test_same_table_from_every_framework():
    torch = pytest.importorskip("torch")
    w1, w2 = _weights(1)
    net = an.Sequential([an.Dense(w1), an.Tanh(), an.Dense(w2)])
    tnet = torch.nn.Sequential(
        torch.nn.Linear(240, 120, bias=False), torch.nn.Tanh(), torch.nn.Linear(120, 60, bias=False)
    ).double()
    with torch.no_grad():
        tnet[0].weight.copy_(torch.as_tensor(w1))
        tnet[2].weight.copy_(torch.as_tensor(w2))
    ours = rmt.model_layers(net, num_bootstrap=20, as_frame=False)
    theirs = rmt.model_layers(tnet, num_bootstrap=20, as_frame=False)
    for a, b in zip(ours, theirs, strict=True):
        for key in ("lambda_max", "num_spikes", "alpha", "alpha_lo", "stable_rank", "entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, nan_ok=True)


def test_frame_and_errors():
    pd = pytest.importorskip("pandas")
    w1, w2 = _weights(2)
    frame = rmt.model_layers(an.Sequential([an.Dense(w1), an.ReLU(), an.Dense(w2)]))
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2

    class NoWeights:
        pass

    with pytest.raises(ModelError):
        rmt.model_layers(NoWeights())


def _dense_operator(conv, shape):
    """The layer as a dense matrix, column by column from torch's own forward pass."""
    torch = pytest.importorskip("torch")
    n_in = int(np.prod(shape))
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *shape)
    with torch.no_grad():
        return conv(basis).reshape(n_in, -1).T.numpy()


@pytest.mark.parametrize("stride", [1, 2])
def test_torch_circular_conv_rows_are_the_dense_operator(stride):
    # a torch CNN with circular padding: the conv row's λ_max and stable rank are those of the
    # layer's dense operator built from torch's forward pass (independent of the Fourier route)
    torch = pytest.importorskip("torch")
    torch.manual_seed(stride)
    conv = torch.nn.Conv2d(3, 8, 3, stride=stride, padding=1, padding_mode="circular", bias=False)
    net = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.Flatten()).double()
    rows = rmt.model_layers(net, input_shape=(3, 8, 8), num_bootstrap=0, as_frame=False)
    (row,) = [r for r in rows if r["name"] == "0.weight"]
    assert row["kind"] == "conv circular" and row["shape"] == (8, 3, 3, 3)
    s = np.linalg.svd(_dense_operator(net[0], (3, 8, 8)), compute_uv=False)
    longer = max(8, 3 * stride * stride)
    assert row["lambda_max"] == pytest.approx(s[0] ** 2 / longer, rel=1e-10)
    assert row["stable_rank"] == pytest.approx(np.sum(s**2) / s[0] ** 2, rel=1e-10)
    # a kernel of 4 with padding 1 gives 7 × 7 outputs: part of the circular operator only
    net[0] = torch.nn.Conv2d(3, 8, 4, padding=1, padding_mode="circular").double()
    rows = rmt.model_layers(net, input_shape=(3, 8, 8), num_bootstrap=0, as_frame=False)
    assert rows[0]["kind"] == "conv circular surrogate"


def test_conv_conventions_and_fallbacks():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3, padding=1),  # zero padding: the circular surrogate
        torch.nn.ReLU(),
        torch.nn.Conv2d(6, 6, 3, groups=2, padding=1),  # grouped: reshaped, said so
        torch.nn.ReLU(),
        torch.nn.Conv2d(6, 4, 3, stride=2),  # 8 − 2 = 6 wide input... divisible by 2
        torch.nn.Flatten(),
    ).double()
    rows = rmt.model_layers(net, input_shape=(2, 8, 8), num_bootstrap=0, as_frame=False)
    kinds = {r["name"]: r["kind"] for r in rows}
    assert kinds["0.weight"] == "conv circular surrogate"
    assert kinds["2.weight"] == "conv reshaped (grouped or dilated)"
    assert kinds["4.weight"] == "conv circular surrogate"
    reshaped = rmt.model_layers(net, conv="reshape", num_bootstrap=0, as_frame=False)
    w = net[0].weight.detach().numpy().reshape(6, -1)
    lam = np.linalg.eigvalsh(w @ w.T / w.shape[1])
    assert reshaped[0]["kind"] == "conv reshaped"
    assert reshaped[0]["lambda_max"] == pytest.approx(lam[-1], rel=1e-10)
    assert rmt.model_layers(net, conv="skip", as_frame=False) == []
    with pytest.raises(ModelError, match="input_shape"):
        rmt.model_layers(net, num_bootstrap=0)  # exact spectra need the input size
    with pytest.raises(ValueError, match="conv"):
        rmt.model_layers(net, conv="fft")


def test_arraynet_conv_rows():
    rng = np.random.default_rng(0)
    net = an.Sequential(
        [
            an.Conv2d(rng.normal(0, 0.2, (4, 2, 3, 3)), stride=2, padding=1),
            an.ReLU(),
            an.Flatten(),
            an.Dense(rng.normal(0, 0.1, (3, 64))),
        ]
    )
    rows = rmt.model_layers(
        an.ArrayNetModel(net, input_shape=(2, 8, 8)), num_bootstrap=0, as_frame=False
    )
    conv = [r for r in rows if r["kind"].startswith("conv")]
    assert len(conv) == 1 and conv[0]["kind"] == "conv circular surrogate"
    from specinterp.conv_spectra import conv2d_singular_values

    s = conv2d_singular_values(net.layers[0].weight, (8, 8), stride=2)
    assert conv[0]["lambda_max"] == pytest.approx(s[0] ** 2 / max(4, 2 * 4), rel=1e-12)


def test_large_matrices_use_the_top_of_the_spectrum():
    # with dense_max below the shorter side, the top-k route: λ_max and the spike count agree
    # with the dense route, stable rank is exact (Frobenius over σ₁²), the eigenvalues are
    # within the stated residual bound of eigvalsh, and the MP σ² from the Frobenius norm of
    # the bulk is close to the dense robust fit
    w1, w2 = _weights(3)
    net = an.Sequential([an.Dense(w1), an.ReLU(), an.Dense(w2)])
    dense = rmt.model_layers(net, num_bootstrap=0, as_frame=False)
    top = rmt.model_layers(net, dense_max=50, num_top=30, num_bootstrap=0, as_frame=False)
    for d, t, w in zip(dense, top, (w1, w2), strict=True):
        assert t["kind"] == "matrix top-30" and t["esd_size"] == 30
        lam = np.linalg.eigvalsh(w @ w.T / w.shape[1])
        assert t["lambda_max"] == pytest.approx(lam[-1], abs=t["residual_bound"] + 1e-12)
        assert t["residual_bound"] < 1e-6 * lam[-1]
        assert t["stable_rank"] == pytest.approx(d["stable_rank"], rel=1e-8)
        assert t["num_spikes"] == d["num_spikes"]
        assert t["sigma2"] == pytest.approx(d["sigma2"], rel=0.05)
        assert np.isnan(t["entropy"]) and np.isnan(t["ks_distance"])


def test_a_tail_inside_the_bulk_is_not_a_power_law():
    # seed 3: the fit alone stands (no alternative is significantly better on 15-odd tail
    # points) with α ≈ 29, but the tail lies inside the Marchenko–Pastur bulk (no spike): the
    # table says "not supported"; i.i.d. Pareto entries (μ = 1.5) give a supported tail
    from specinterp.heavy_tails import power_law_fit

    gauss = np.random.default_rng(3).standard_normal((3000, 300))
    rng = np.random.default_rng(0)
    pareto = (rng.pareto(1.5, (600, 300)) + 1.0) * rng.choice([-1.0, 1.0], (600, 300))
    net = an.Sequential([an.Dense(gauss.T), an.ReLU(), an.Dense(pareto)])
    g_row, p_row = rmt.model_layers(net, num_bootstrap=0, randomize=False, as_frame=False)
    lam = np.linalg.eigvalsh(gauss.T @ gauss / 3000)
    assert power_law_fit(lam, num_bootstrap=0).supported and g_row["alpha"] > 10
    assert g_row["num_spikes"] == 0 and not g_row["power_law_supported"]
    assert p_row["power_law_supported"] and abs(p_row["alpha"] - 1.75) < 0.25


def test_jax_convolutions_come_from_the_jaxpr():
    # a Flax NNX CNN (kernels in HWIO) and an Equinox conv (OIHW): the rows name the kernel
    # leaf and equal the torch layer holding the same kernel (independent route: torch hooks)
    jax = pytest.importorskip("jax")
    nnx = pytest.importorskip("flax.nnx")
    torch = pytest.importorskip("torch")
    jnp = jax.numpy
    conv = nnx.Conv(3, 8, (3, 3), strides=2, padding=1, rngs=nnx.Rngs(0))
    net = nnx.Sequential(conv, nnx.relu, lambda z: z.reshape(z.shape[0], -1))
    rows = rmt.model_layers(net, input_shape=(8, 8, 3), num_bootstrap=0, as_frame=False)
    (row,) = rows
    assert "kernel" in row["name"] and row["kind"] == "conv circular surrogate"
    with pytest.raises(ModelError, match="input_shape"):  # no input to trace the convs on
        rmt.model_layers(net, num_bootstrap=0)
    assert rmt.model_layers(net, conv="skip", as_frame=False) == []
    kernel = np.transpose(np.array(conv.kernel[...]), (3, 2, 0, 1))  # HWIO → OIHW, a copy
    tconv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        tconv.weight.copy_(torch.as_tensor(kernel))
    theirs = rmt.model_layers(tconv, input_shape=(3, 8, 8), num_bootstrap=0, as_frame=False)
    assert row["shape"] == theirs[0]["shape"] == (8, 3, 3, 3)
    for key in ("lambda_max", "stable_rank", "entropy", "num_spikes"):
        assert row[key] == pytest.approx(theirs[0][key], rel=1e-5)
    eqx = pytest.importorskip("equinox")
    econv = eqx.nn.Conv2d(3, 8, 3, stride=2, padding=1, use_bias=False, key=jax.random.key(0))
    econv = eqx.tree_at(lambda c: c.weight, econv, jnp.asarray(kernel))

    from specinterp.adapters.jax import JaxModel

    eq_model = JaxModel.from_equinox(econv, input_shape=(3, 8, 8))
    eq_rows = rmt.model_layers(eq_model, num_bootstrap=0, as_frame=False)
    assert eq_rows[0]["name"] == ".weight"
    assert eq_rows[0]["lambda_max"] == pytest.approx(theirs[0]["lambda_max"], rel=1e-5)
