"""One network, three adapters: torch modules, their arraynet copies, and independent JAX code.

The JAX version is written from the layer list with ``jax.lax`` (not from arraynet), so a
cross-check between adapters compares three independent implementations of the same function.
Parameters are passed to JAX as a list in torch's ``named_parameters()`` order, so the flat
parameter vectors of all three adapters coincide.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
from specinterp.adapters import arraynet  # noqa: E402

from specinterp import as_model  # noqa: E402


def torch_mlp(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return (
        torch.nn.Sequential(
            torch.nn.Linear(5, 7),
            torch.nn.Tanh(),
            torch.nn.Linear(7, 6),
            torch.nn.GELU(approximate="tanh"),
            torch.nn.Linear(6, 4),
            torch.nn.Softplus(beta=1.5),
            torch.nn.Linear(4, 3),
        )
        .double()
        .eval()
    )


def torch_cnn(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return (
        torch.nn.Sequential(
            torch.nn.Conv2d(2, 3, 3, stride=2, padding=1),
            torch.nn.Tanh(),
            torch.nn.Conv2d(3, 2, 2),
            torch.nn.Sigmoid(),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 3),
        )
        .double()
        .eval()
    )


def jax_apply(tnet: torch.nn.Sequential):
    """An independent JAX implementation of ``tnet``; returns (apply_fn, params list)."""
    params = [jnp.asarray(p.detach().numpy()) for p in tnet.parameters()]
    plan = list(tnet)

    def apply(ps, x):
        i = 0
        for m in plan:
            if isinstance(m, torch.nn.Linear):
                x = x @ ps[i].T + ps[i + 1]
                i += 2
            elif isinstance(m, torch.nn.Conv2d):
                s, p = m.stride[0], m.padding[0]
                x = (
                    jax.lax.conv_general_dilated(
                        x,
                        ps[i],
                        (s, s),
                        [(p, p), (p, p)],
                        dimension_numbers=("NCHW", "OIHW", "NCHW"),
                    )
                    + ps[i + 1][None, :, None, None]
                )
                i += 2
            elif isinstance(m, torch.nn.Tanh):
                x = jnp.tanh(x)
            elif isinstance(m, torch.nn.Sigmoid):
                x = jax.nn.sigmoid(x)
            elif isinstance(m, torch.nn.GELU):
                x = jax.nn.gelu(x, approximate=True)
            elif isinstance(m, torch.nn.Softplus):
                x = jax.nn.softplus(m.beta * x) / m.beta
            elif isinstance(m, torch.nn.ReLU):
                x = jax.nn.relu(x)
            elif isinstance(m, torch.nn.Flatten):
                x = jnp.reshape(x, (x.shape[0], -1))
            else:  # pragma: no cover
                raise TypeError(m)
        return x

    return apply, params


def three_models(tnet: torch.nn.Sequential):
    """(torch, arraynet, jax) adapters of one network."""
    fn, params = jax_apply(tnet)
    return {
        "torch": as_model(tnet),
        "arraynet": as_model(arraynet.from_torch(tnet)),
        "jax": as_model(fn, params),
    }


def convert(name: str, a: np.ndarray):
    if name == "torch":
        return torch.as_tensor(a)
    if name == "jax":
        return jnp.asarray(a)
    return np.asarray(a)


def tanh_mlp(d: int, h: int, c: int, seed: int = 0) -> torch.nn.Sequential:
    """``Linear(d, h) – Tanh – Linear(h, c)`` in float32, seeded."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(), torch.nn.Linear(h, c))
