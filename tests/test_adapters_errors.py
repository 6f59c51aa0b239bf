"""Bad input to models and model-level operators: specific errors with useful messages."""

from __future__ import annotations

import numpy as np
import pytest
from specinterp.adapters import arraynet as an

import specinterp as si
from specinterp import operators
from specinterp.errors import (
    DTypeError,
    EmptyInputError,
    MemoryBudgetError,
    ModelError,
    NamespaceMismatchError,
    ShapeError,
)

torch = pytest.importorskip("torch")


@pytest.fixture
def net():
    return an.init_mlp([4, 5, 3], seed=0)


def test_wrong_input_shape(net):
    m = si.as_model(net)
    with pytest.raises(ShapeError, match="takes 4 features"):
        m.apply(np.ones((2, 5)))
    with pytest.raises(ShapeError, match="batch"):
        m.apply(np.ones(4))
    conv = si.as_model(
        an.Sequential([an.Conv2d(np.ones((2, 3, 2, 2))), an.Flatten(), an.Dense(np.ones((1, 8)))])
    )
    with pytest.raises(ShapeError, match=r"\(3, H, W\)"):
        conv.apply(np.ones((1, 2, 3, 3)))
    tm = si.as_model(torch.nn.Linear(4, 2).double(), input_shape=(4,))
    with pytest.raises(ShapeError, match="per-sample shape"):
        tm.apply(torch.ones(2, 3, dtype=torch.float64))


def test_non_float_and_mismatched_inputs(net):
    m = si.as_model(net)
    with pytest.raises(DTypeError, match="real floating"):
        m.apply(np.ones((2, 4), dtype=np.int64))
    with pytest.raises(DTypeError, match="no silent"):
        m.apply(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(NamespaceMismatchError, match="numpy array"):
        m.apply(torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(EmptyInputError):
        m.apply(np.ones((0, 4)))
    x = np.ones((2, 4))
    x[0, 1] = np.nan
    with pytest.raises(si.errors.NonFiniteError):
        operators.input_jacobian(m, x)


def test_training_mode_with_dropout_is_refused():
    mod = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5), torch.nn.Linear(3, 2))
    with pytest.raises(ModelError, match=r"module.eval\(\)"):
        si.as_model(mod)
    si.as_model(mod.eval())  # the documented switch
    plain = torch.nn.Sequential(torch.nn.Linear(3, 2))  # training mode is harmless here
    si.as_model(plain)


def test_dense_request_over_budget_names_the_operator(net):
    m = si.as_model(net)
    x = np.ones((3, 4))
    y = np.ones((3, 3))
    with pytest.raises(MemoryBudgetError, match="hessian_operator"):
        operators.hessian(m, x, y, "mse", max_bytes=100)
    with pytest.raises(MemoryBudgetError, match="ntk_operator"):
        operators.ntk(m, x, max_bytes=60)
    with pytest.raises(MemoryBudgetError, match="param_jacobian_operator"):
        operators.param_jacobian(m, x, max_bytes=100)
    with pytest.raises(MemoryBudgetError, match="input_jacobian_operator"):
        operators.input_jacobian(m, x, max_bytes=100)


def test_unknown_objects_and_losses(net):
    with pytest.raises(ModelError, match=r"torch\.nn\.Module"):
        si.as_model(object())
    m = si.as_model(net)
    with pytest.raises(ValueError, match="loss must be one of"):
        operators.hessian(m, np.ones((2, 4)), np.ones((2, 3)), "hinge")
    with pytest.raises(TypeError, match="integer class labels"):
        operators.hessian(m, np.ones((2, 4)), np.ones(2), "cross_entropy")
    with pytest.raises(ShapeError, match="targets"):
        operators.hessian(m, np.ones((2, 4)), np.ones((2, 2)), "mse")
    with pytest.raises(ShapeError, match="flat parameter vector"):
        m.jvp_params(np.ones((2, 4)), np.ones(3))
    with pytest.raises(ModelError, match="unknown parameter"):
        si.as_model(torch.nn.Linear(2, 2), param_names=["nope"])


def test_certified_radius_needs_piecewise_linear(net):
    smooth = an.init_mlp([4, 5, 3], an.Tanh(), seed=0)
    with pytest.raises(ModelError, match="piecewise-linear"):
        si.certified_radius(smooth, np.ones((1, 4)))
    tanh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh()).double()
    with pytest.raises(ModelError, match="Tanh"):
        si.certified_radius(tanh, torch.ones(1, 4, dtype=torch.float64))

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            return x + torch.relu(self.lin(x))

    with pytest.raises(ModelError, match=r"nn\.Sequential"):
        si.certified_radius(Residual(), torch.ones(1, 4))


def test_torch_parameter_subset_and_batchnorm_buffers():
    torch.manual_seed(0)
    mod = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()
    mod[1].running_mean.normal_()
    mod[1].running_var.uniform_(0.5, 2.0)
    mod.eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    full = si.as_model(mod)
    np.testing.assert_allclose(full.apply(x).numpy(), mod(x).detach().numpy(), rtol=1e-12)
    names = [n for n, _ in mod.named_parameters()]
    sizes = [p.numel() for _, p in mod.named_parameters()]
    sub = si.as_model(mod, param_names=["3.weight", "0.bias"])
    assert sub.num_params == 8 + 4
    g_full = operators.param_jacobian(full, x).numpy()
    offsets = np.cumsum([0, *sizes])
    cols = {n: slice(offsets[i], offsets[i + 1]) for i, n in enumerate(names)}
    expected = np.concatenate(
        [g_full[:, :, cols["3.weight"]], g_full[:, :, cols["0.bias"]]], axis=2
    )
    np.testing.assert_allclose(operators.param_jacobian(sub, x).numpy(), expected, rtol=1e-12)


def test_frozen_parameters_are_held_fixed_by_default():
    """A module with a frozen first layer (``requires_grad=False``, a fine-tuning setup) is
    differentiated in its trainable parameters only, as PyHessian and the optimisers see it:
    the Hessian equals torch's over those alone; a module frozen throughout (for inference)
    keeps all its parameters, and ``param_names=`` overrides both."""
    torch.manual_seed(1)
    mod = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    mod = mod.double()
    mod[0].requires_grad_(False)
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0])
    model = si.as_model(mod)
    assert model.num_params == 5 * 2 + 2 and "p=12 (20 more held fixed)" in repr(model)

    hidden = mod[1](mod[0](x)).detach()

    def loss(w, b):
        return torch.nn.functional.cross_entropy(hidden @ w.T + b, y)

    w, b = mod[2].weight.detach(), mod[2].bias.detach()
    blocks = torch.autograd.functional.hessian(loss, (w, b))
    dense = torch.cat(
        [
            torch.cat([blocks[0][0].reshape(10, 10), blocks[0][1].reshape(10, 2)], 1),
            torch.cat([blocks[1][0].reshape(2, 10), blocks[1][1].reshape(2, 2)], 1),
        ]
    )
    torch.testing.assert_close(si.hessian(model, x, y, "cross_entropy"), dense)
    assert si.as_model(mod, param_names=["0.weight"]).num_params == 15
    mod.requires_grad_(False)
    assert si.as_model(mod).num_params == 3 * 5 + 5 + 5 * 2 + 2


# ------------------------------------------------------------------ targets and late misuse
def _torch_net():
    torch.manual_seed(0)
    return (
        torch.nn.Sequential(
            torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(6, 3)
        )
        .double()
        .eval()
    )


def _models():
    """The same kind of 4 → 3 classifier from each adapter, with a batch of its inputs."""
    out = [(si.as_model(an.init_mlp([4, 5, 3], seed=0)), np.ones((5, 4)), np.asarray)]
    out.append((si.as_model(_torch_net()), torch.ones(5, 4, dtype=torch.float64), torch.as_tensor))
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    params = {"w": jnp.ones((4, 3), dtype=jnp.float32)}
    x = jnp.ones((5, 4), dtype=jnp.float32)  # float32 whether or not x64 is enabled
    out.append((si.as_model(lambda p, x: x @ p["w"], params), x, jnp.asarray))
    return out


@pytest.mark.parametrize("bad", [3, -1])
def test_labels_out_of_range_are_refused(bad):
    """A label C or −1 selects no class: every entry point refuses it before any product."""
    from specinterp.errors import LabelError

    for model, x, arr in _models():
        y = arr(np.array([0, 1, 2, bad, 0]))
        for build in (si.hessian_operator, si.ggn_operator, si.gmsi):
            with pytest.raises(LabelError, match=r"\[0, 2\]"):
                build(model, x, y, loss="cross_entropy")


def test_targets_from_another_library_name_the_conversion():
    model, x, _ = _models()[1]
    with pytest.raises(NamespaceMismatchError, match=r"torch\.as_tensor"):
        si.hessian_operator(model, x, np.array([0, 1, 2, 1, 0]), "cross_entropy")
    with pytest.raises(DTypeError, match="integer class labels"):
        si.hessian_operator(model, x, torch.zeros(5, dtype=torch.float64), "cross_entropy")


def test_module_switched_to_training_after_wrapping():
    net = _torch_net()
    model = si.as_model(net)
    net.train()
    with pytest.raises(ModelError, match=r"module\.eval\(\)"):
        si.ntk(model, torch.ones(2, 4, dtype=torch.float64))
    net.eval()
    assert si.ntk(model, torch.ones(2, 4, dtype=torch.float64)).shape == (6, 6)


def test_wrong_per_sample_shape_without_input_shape():
    model = si.as_model(_torch_net())
    with pytest.raises(ModelError, match=r"per-sample shape \(5,\).*input_shape"):
        si.jacobian_spectra(model, torch.ones(2, 5, dtype=torch.float64))


def test_flax_conv_fed_channels_first_names_the_layout():
    jnp = pytest.importorskip("jax.numpy")
    nnx = pytest.importorskip("flax.nnx")

    class CNN(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(3, 4, (3, 3), rngs=rngs)

        def __call__(self, x):
            return self.conv(x).reshape(x.shape[0], -1)

    model = si.as_model(CNN(nnx.Rngs(0)))
    nhwc = jnp.ones((2, 6, 6, 3), dtype=jnp.float32)
    assert model.apply(nhwc).shape == (2, 6 * 6 * 4)
    nchw = jnp.ones((2, 3, 6, 6), dtype=jnp.float32)
    for call in (model.apply, lambda x: si.jacobian_spectra(model, x)):
        with pytest.raises(ModelError, match=r"per-sample shape \(3, 6, 6\).*NHWC") as info:
            call(nchw)
        assert "conv_general_dilated" in str(info.value)  # JAX's own first line, kept
        assert isinstance(info.value.__cause__, TypeError | ValueError)


def test_jax_function_with_numpy_parameters():
    with pytest.raises(ModelError, match=r"jax\.tree\.map"):
        si.as_model(lambda p, x: x @ p["w"], {"w": np.ones((4, 3))})


def test_unknown_as_model_options_name_the_adapters_options():
    with pytest.raises(ModelError, match=r"torch adapter takes no option bogus;.*pad_token_id="):
        si.as_model(_torch_net(), bogus=1)
    with pytest.raises(ModelError, match=r"arraynet adapter takes no option output; .*shape="):
        si.as_model(an.init_mlp([2, 3], an.Tanh()), output=0)
    nnx = pytest.importorskip("flax.nnx")
    with pytest.raises(ModelError, match=r"Flax NNX adapter takes no option pad_token_id") as info:
        si.as_model(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), pad_token_id=0)
    assert "embedder" not in str(info.value) and "embedding=" in str(info.value)


def test_half_precision_models_are_refused_at_wrapping():
    """A float16 / bfloat16 model would be differentiated at 3 digits (a float16 Hessian
    reached NumPy's eigvalsh and failed there with a TypeError); each adapter refuses it."""
    lin = torch.nn.Linear(3, 2)
    for half in (torch.float16, torch.bfloat16):
        with pytest.raises(DTypeError, match=r"half precision.*model\.float\(\)"):
            si.as_model(torch.nn.Linear(3, 2).to(half))
    si.as_model(lin)  # float32 is fine
    with pytest.raises(DTypeError, match="half precision"):
        si.as_model(an.Sequential([an.Dense(np.ones((2, 3), dtype=np.float16))]))
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(DTypeError, match="half precision"):
        si.as_model(lambda p, x: x @ p, jnp.ones((3, 2), dtype=jnp.bfloat16))
