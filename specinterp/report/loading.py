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


def _factory(spec: str, option: str) -> Any:
    """Import ``module:factory`` (a module name or a ``.py`` path); return the callable."""
    target, _, name = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ReportInputError(f"{option} file {path} does not exist")
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
    return factory


def load_model(spec: str) -> Any:
    """Import ``module:factory`` (a module name or a ``.py`` path) and call the factory.

    The factory returns a torch module (Hugging Face models included), an arraynet
    ``Sequential``, an Equinox or Flax NNX module, a fitted scikit-learn MLP, or an
    ``(apply_fn, params)`` pair for JAX / Flax linen.
    """
    if ":" not in spec:
        raise ReportInputError(
            f"--model must look like module:factory or path.py:factory; got {spec!r}"
        )
    factory = _factory(spec, "model")
    try:
        return factory()
    except Exception as exc:
        raise ReportInputError(
            f"the model factory {spec} raised {type(exc).__name__}: {exc}"
        ) from exc


def _host_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Host arrays; integer inputs (token ids) stay integer, others become float64."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ReportInputError(
            f"x has shape {x.shape} and y {y.shape}: they must pair up along their first axis, "
            "one target (or target sequence) per sample"
        )
    return (x if np.issubdtype(x.dtype, np.integer) else x.astype(np.float64)), y


def load_data(spec: str) -> tuple[np.ndarray, np.ndarray, str]:
    """``--data``: an ``.npz``, an MNIST / CIFAR folder, or a ``module:factory`` of ``(x, y)``.

    The ``.npz`` holds arrays ``x`` and ``y``; the factory may be in a ``.py`` path. Returns
    inputs (integer token ids stay integer), targets and a description.
    """
    if ":" in spec and not Path(spec).exists():
        try:
            x, y = _factory(spec, "data")()
        except ReportInputError:
            raise
        except Exception as exc:
            raise ReportInputError(
                f"the data factory {spec} failed ({type(exc).__name__}: {exc}); it must "
                "return a pair (x, y)"
            ) from exc
        return (*_host_pair(x, y), spec)
    path = Path(spec)
    if not path.exists():
        raise ReportInputError(f"data path {path} does not exist")
    try:
        if path.is_file():
            with np.load(path) as data:
                if "x" not in data or "y" not in data:
                    raise ReportInputError(f"{path} must hold arrays named x and y")
                return (*_host_pair(data["x"], data["y"]), str(path))
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
