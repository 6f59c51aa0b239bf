"""Loading a user's model (``--model module:factory``) and data (``--data``) for the report."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import load_cifar, load_mnist_idx

__all__ = ["ReportInputError", "load_data", "load_model"]


class ReportInputError(Exception):
    """A user input of the report cannot be used; the message is one line for the terminal."""


def load_model(spec: str) -> Any:
    """Import ``module:factory`` (a module name or a ``.py`` path) and call the factory.

    The factory returns a torch module, an arraynet ``Sequential``, an Equinox module, or a
    ``(apply_fn, params)`` pair for JAX.
    """
    if ":" not in spec:
        raise ReportInputError(
            f"--model must look like module:factory or path.py:factory; got {spec!r}"
        )
    target, _, name = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ReportInputError(f"model file {path} does not exist")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[path.stem] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ReportInputError:
        raise
    except Exception as exc:
        raise ReportInputError(f"could not import {target}: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ReportInputError(f"{target} has no callable {name!r}")
    try:
        return factory()
    except Exception as exc:
        raise ReportInputError(
            f"the model factory {spec} raised {type(exc).__name__}: {exc}"
        ) from exc


def load_data(spec: str) -> tuple[np.ndarray, np.ndarray, str]:
    """``--data``: an ``.npz`` with ``x`` and ``y``, or a folder with MNIST IDX / CIFAR files.

    Returns inputs, integer labels and a description.
    """
    path = Path(spec)
    if not path.exists():
        raise ReportInputError(f"data path {path} does not exist")
    try:
        if path.is_file():
            with np.load(path) as data:
                if "x" not in data or "y" not in data:
                    raise ReportInputError(f"{path} must hold arrays named x and y")
                return np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"]), str(path)
        if any(path.glob("t10k-images*")):
            x, y = load_mnist_idx(path, train=False)
            return x, y, f"MNIST test set ({path})"
        if (path / "test_batch").is_file():
            x, y = load_cifar(path, classes=10, train=False)
            return x, y, f"CIFAR-10 test set ({path})"
        if (path / "test").is_file():
            x, y = load_cifar(path, classes=100, train=False)
            return x, y, f"CIFAR-100 test set ({path})"
    except ReportInputError:
        raise
    except Exception as exc:
        raise ReportInputError(f"could not read {path}: {type(exc).__name__}: {exc}") from exc
    raise ReportInputError(
        f"{path} is a folder without MNIST IDX (t10k-images-idx3-ubyte) or CIFAR batches"
    )
