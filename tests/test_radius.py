"""T4 on torch networks: the certified radius of ReLU MLPs and CNNs (max-pooling included).

Truth: the arraynet product form for the same MLP weights, and for CNNs the defining property
itself — the input Jacobian (torch.func.jacrev) is unchanged at points sampled inside the ball
and changes just beyond the nearest boundary in the returned direction.
"""

from __future__ import annotations

import numpy as np
import pytest

import specinterp as si
from specinterp.errors import MemoryBudgetError

torch = pytest.importorskip("torch")
from specinterp.adapters import arraynet as an  # noqa: E402
from torch.func import jacrev, vmap  # noqa: E402

nn = torch.nn


def _jacobians(net, x):
    out = vmap(jacrev(lambda xi: net(xi[None])[0]))(x)
    return out.reshape(x.shape[0], out.shape[1], -1)


def test_torch_mlp_equals_arraynet_product_form():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.LeakyReLU(0.1), nn.Linear(8, 3)
    ).double()
    x = torch.randn(16, 6, dtype=torch.float64)
    rho = si.certified_radius(net, x)
    expected = si.certified_radius(an.from_torch(net), x.numpy())
    np.testing.assert_allclose(rho.numpy(), expected, rtol=1e-10)


def test_affine_network_has_infinite_radius():
    x = torch.randn(3, 4, dtype=torch.float64)
    rho = si.certified_radius(nn.Sequential(nn.Linear(4, 2)).double(), x)
    assert torch.all(torch.isinf(rho))


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [
            nn.Conv2d(1, 4, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 2),
            nn.LeakyReLU(0.05),
            nn.Flatten(),
            nn.Linear(16, 4),
        ],
        lambda: [
            nn.Conv2d(1, 3, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(48, 5),
            nn.ReLU(),
            nn.Linear(5, 4),
        ],
    ],
    ids=["conv-relu-maxpool", "strided-conv"],
)
def test_relu_cnn_jacobian_constant_inside_and_changes_outside(layers):
    torch.manual_seed(1)
    net = nn.Sequential(*layers()).double().eval()
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    rho, direction = si.certified_radius(net, x, return_direction=True)
    assert torch.all(torch.isfinite(rho)) and torch.all(rho > 0)
    j0 = _jacobians(net, x)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):  # random points strictly inside the ball
        u = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        u = u / u.reshape(8, -1).norm(dim=1)[:, None, None, None]
        inside = x + 0.99 * rho[:, None, None, None] * u
        torch.testing.assert_close(_jacobians(net, inside), j0, rtol=1e-9, atol=1e-12)
    step = direction.reshape(x.shape) * rho[:, None, None, None]
    np.testing.assert_allclose(direction.norm(dim=1).numpy(), 1.0, rtol=1e-12)
    outside = _jacobians(net, x + 1.001 * step)
    changed = (outside - j0).reshape(8, -1).abs().amax(dim=1) > 1e-9
    assert bool(changed.all())


def test_chunks_within_the_budget_agree_and_a_tiny_budget_is_refused():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)).double()
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    whole = si.certified_radius(net, x)
    per_sample = 3 * 72 * 64 * 8
    torch.testing.assert_close(si.certified_radius(net, x, max_bytes=2 * per_sample), whole)
    with pytest.raises(MemoryBudgetError, match="max_bytes"):
        si.certified_radius(net, x, max_bytes=per_sample // 2)
