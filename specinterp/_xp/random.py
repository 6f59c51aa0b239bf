"""A seeded random-number source for every namespace (the array API has no RNG)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Array = Any
Namespace = Any


class Generator:
    """A seeded random-number source that returns arrays of any namespace.

    Draws are made on the host by NumPy's PCG64 and then copied to the requested namespace,
    dtype and device, so one seed gives the *same* numbers on every backend (NumPy, PyTorch,
    JAX, CuPy, array-api-strict). That makes randomised algorithms reproducible across
    backends; the cost is one host-to-device copy per draw, small next to an operator product.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        ``None`` draws fresh OS entropy (not reproducible).
    xp : namespace
        Array namespace of the arrays to return.
    device : optional
        Device of the arrays to return (default: the namespace's default device).

    """

    def __init__(self, seed: int | np.random.Generator | None, xp: Namespace, device: Any = None):
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.xp = xp
        self.device = device

    def _wrap(self, values: np.ndarray, dtype: Any) -> Array:
        dtype = self.xp.float64 if dtype is None else dtype
        if self.device is None:
            return self.xp.asarray(values, dtype=dtype)
        return self.xp.asarray(values, dtype=dtype, device=self.device)

    def normal(self, shape: Sequence[int], dtype: Any = None, scale: float = 1.0) -> Array:
        """Independent ``N(0, scale²)`` entries."""
        return self._wrap(self._rng.normal(0.0, scale, size=tuple(shape)), dtype)

    def uniform(
        self, shape: Sequence[int], dtype: Any = None, low: float = 0.0, high: float = 1.0
    ) -> Array:
        """Independent uniform entries on ``[low, high)``."""
        return self._wrap(self._rng.uniform(low, high, size=tuple(shape)), dtype)

    def rademacher(self, shape: Sequence[int], dtype: Any = None) -> Array:
        """Independent ±1 entries with equal probability (drawn as bytes, row-major)."""
        signs = self._rng.integers(0, 2, size=tuple(shape), dtype=np.int8)
        return self._wrap(signs * np.int8(2) - np.int8(1), dtype)

    def sphere(self, shape: Sequence[int], dtype: Any = None, radius: float = 1.0) -> Array:
        """Vectors uniform on the sphere of ``radius`` along the last axis of ``shape``."""
        g = self._rng.normal(size=tuple(shape))
        g *= radius / np.linalg.norm(g, axis=-1, keepdims=True)
        return self._wrap(g, dtype)

    def spawn(self) -> Generator:
        """An independent child generator (NumPy's ``spawn``), same namespace and device."""
        return Generator(self._rng.spawn(1)[0], self.xp, self.device)


def as_generator(
    seed: int | np.random.Generator | Generator | None, xp: Namespace, device: Any = None
) -> Generator:
    """Coerce ``seed`` into a :class:`Generator` for ``xp`` on ``device``."""
    if isinstance(seed, Generator):
        return Generator(seed._rng, xp, device)
    return Generator(host_generator(seed), xp, device)


def host_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """NumPy's generator for ``seed``: ``None``, a non-negative int or a NumPy ``Generator``."""
    if seed is not None and not isinstance(seed, int | np.integer | np.random.Generator):
        raise TypeError(
            f"seed must be an int, a numpy.random.Generator or None; got {type(seed).__name__}"
        )
    if isinstance(seed, int | np.integer) and seed < 0:
        raise ValueError(f"seed must be a non-negative integer (NumPy's seeds are); got {seed}")
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
