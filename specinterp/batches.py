"""Data as a re-iterable source of ``(x, y)`` batches (:ref:`theory-data`).

A Krylov method applies the same operator many times, so an operator over a whole dataset must
see the same samples at every product: :func:`as_batches` accepts what users hold — an
``(x, y)`` pair, a list of pairs, a function returning a fresh iterator, a torch
``DataLoader``, a pair of Dask arrays chunked along the samples — and refuses what cannot be
replayed (a one-shot iterator, a loader that drops a random remainder each epoch). A shuffling
``DataLoader`` is replayed in order: the sample-weighted mean over all samples does not depend
on their order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import _xp
from .errors import DataError

Array = Any

__all__ = ["Batches", "as_batches"]


def _is_pair(item: Any) -> bool:
    return (
        isinstance(item, (tuple, list))
        and len(item) == 2
        and all(_xp.is_array(a) or _is_dask(a) for a in item)
    )


def _is_dask(a: Any) -> bool:
    return type(a).__module__.startswith("dask.") and hasattr(a, "blocks")


def _in_order(loader: Any) -> Any:
    """A torch ``DataLoader`` that replays the same batches every pass, or a DataError."""
    from torch.utils.data import RandomSampler, SequentialSampler

    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, SequentialSampler) and loader.batch_sampler is not None:
        return loader
    if isinstance(sampler, RandomSampler):
        if loader.drop_last:
            raise DataError(
                "this DataLoader shuffles and drops the last incomplete batch, so each pass "
                "sees different samples and the operator changes between products; pass "
                "DataLoader(dataset, batch_size=..., shuffle=False) — the mean over all "
                "samples does not depend on their order"
            )
        return type(loader)(
            loader.dataset,
            batch_size=loader.batch_size,
            shuffle=False,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
        )
    raise DataError(
        f"this DataLoader draws its batches with a {type(sampler).__name__}, which may change "
        "between passes; pass one with shuffle=False (a SequentialSampler)"
    )


@dataclass
class Batches:
    """A re-iterable source of ``(x, y)`` batches; iterate it once per pass over the data.

    Build it with :func:`as_batches`. ``sizes`` (the batch sizes of the first pass) is filled
    in by the first pass; a later pass with other sizes raises :class:`DataError`, because the
    data changed between products.
    """

    factory: Callable[[], Iterable[Any]]
    description: str
    sizes: list[int] | None = None

    def __iter__(self) -> Iterator[tuple[Array, Array]]:
        sizes: list[int] = []
        for item in self.factory():
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                hint = ""
                if isinstance(item, dict):
                    keys = ", ".join(repr(k) for k in list(item)[:4])
                    hint = (
                        f" with keys {keys}: map it to pairs, e.g. data=lambda: "
                        "((b['input_ids'], b['labels']) for b in loader)"
                    )
                raise DataError(
                    f"every batch must be a pair (x, y); {self.description} yielded a "
                    f"{type(item).__name__}{hint}"
                )
            x, y = item
            if _is_dask(x):
                x, y = x.compute(), y.compute()
            if int(x.shape[0]) != int(y.shape[0]):
                raise DataError(
                    f"a batch has {int(x.shape[0])} inputs but {int(y.shape[0])} targets"
                )
            sizes.append(int(x.shape[0]))
            if self.sizes is not None and (
                len(sizes) > len(self.sizes) or sizes[-1] != self.sizes[len(sizes) - 1]
            ):
                raise DataError(_CHANGED)
            yield x, y
        if self.sizes is None:
            if not sizes:
                raise DataError(f"{self.description} yielded no batches")
            self.sizes = sizes
        elif sizes != self.sizes:
            raise DataError(_CHANGED)

    @property
    def num_samples(self) -> int:
        """Total samples (after the first pass)."""
        if self.sizes is None:
            for _ in self:
                pass
        return sum(self.sizes or [])


_CHANGED = (
    "the data changed between passes (other batch sizes): an operator over a dataset needs "
    "the same samples at every product — use a loader without shuffling or random drops"
)


def as_batches(data: Any) -> Batches:
    """Normalise ``data`` into :class:`Batches`.

    Accepts an ``(x, y)`` pair (one batch), a list or tuple of pairs, a function returning a
    fresh iterable of pairs, a torch ``DataLoader`` (a shuffling one is replayed in order), a
    pair of Dask arrays (one batch per chunk along the samples), any other re-iterable object
    (each pass calls ``iter`` on it afresh), or :class:`Batches`.

    Raises
    ------
    DataError
        For a one-shot iterator or generator (it would be exhausted after the first product),
        a loader whose batches change between passes, or anything else.

    """
    if isinstance(data, Batches):
        return data
    if _is_pair(data):
        x, y = data
        if _is_dask(x):
            if not _is_dask(y) or x.chunks[0] != y.chunks[0]:
                raise DataError(
                    "Dask inputs and targets must be chunked alike along the samples: "
                    "y = y.rechunk({0: x.chunks[0]})"
                )
            blocks = [(x.blocks[i], y.blocks[i]) for i in range(x.numblocks[0])]
            return Batches(lambda: iter(blocks), f"Dask arrays in {len(blocks)} chunks")
        return Batches(lambda: iter([(x, y)]), "one batch")
    if all(hasattr(data, a) for a in ("dataset", "sampler", "batch_sampler")):  # a DataLoader
        loader = _in_order(data)
        return Batches(lambda: iter(loader), "the DataLoader")
    if isinstance(data, Iterator):
        raise DataError(
            "a one-shot iterator or generator is exhausted after the first product; pass a "
            "list of (x, y) batches, a DataLoader, or a function returning a fresh iterator "
            "(data=lambda: my_batches())"
        )
    if callable(data):
        return Batches(data, "the batch factory")
    if isinstance(data, (list, tuple)):
        items = list(data)
        return Batches(lambda: iter(items), f"a list of {len(items)} batches")
    if isinstance(data, Iterable):  # re-iterable (not an iterator): a fresh pass each time
        return Batches(lambda: iter(data), f"the {type(data).__name__}")
    raise DataError(
        f"cannot read batches from a {type(data).__name__}: pass (x, y), a list of (x, y) "
        "batches, a DataLoader, or a function returning an iterable of them"
    )
