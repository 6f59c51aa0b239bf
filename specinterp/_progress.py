"""Progress bars and time estimates for long Krylov and SLQ runs.

:func:`counting` (or :func:`counted`, in a ``with`` block) wraps an operator so that every
product it applies advances a bar (tqdm when installed, nothing otherwise); an operator's
compression (a model's Hessian or GGN that vanishes outside a known subspace) is kept, its
products counted on the same bar. A bar appears only once a run has lasted ``DELAY`` seconds,
so short runs print nothing; after the first product the expected time of the run is printed
when it exceeds ``ESTIMATE_AFTER`` seconds. ``enabled=False`` is silent.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Iterator
from typing import Any

from .linalg.compression import Compression
from .linalg.operator import LinearOperator

__all__ = ["counted", "counted_range", "counting"]

#: seconds before a bar is shown
DELAY = 2.0
#: a run expected to last longer than this many seconds is announced after its first product
ESTIMATE_AFTER = 10.0


class _Bar:
    def __init__(
        self,
        desc: str,
        expected: int | None,
        enabled: bool,
        typical: tuple[int, int] | None = None,
    ) -> None:
        self.desc, self.expected, self.enabled = desc, expected, enabled
        self.typical = typical
        self.count, self.started, self._bar = 0, time.perf_counter(), None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is optional: no bar, the estimate still prints
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=expected,
                    desc=desc,
                    delay=DELAY,
                    unit="product",
                    leave=False,
                    disable=None,  # no bar when stderr is not a terminal (logs, CI)
                )

    def advance(self, products: int) -> None:
        self.count += products
        if self._bar is not None:
            self._bar.update(products)
        if self.enabled and self.count == products and (self.expected or self.typical):
            per = (time.perf_counter() - self.started) / products
            if self.expected:
                count, total = f"{self.expected}", f"{per * self.expected:.0f}"
                longest = per * self.expected
            else:
                lo, hi = self.typical
                count, total = f"{lo}–{hi} (typically)", f"{per * lo:.0f}–{per * hi:.0f}"
                longest = per * hi
            if longest > ESTIMATE_AFTER:
                print(
                    f"specinterp: {self.desc}: about {count} products at {per:.3g} s each, "
                    f"≈ {total} s",
                    file=sys.stderr,
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def counting(
    op: LinearOperator,
    desc: str,
    expected: int | None = None,
    *,
    enabled: bool = True,
    bar: _Bar | None = None,
    typical: tuple[int, int] | None = None,
) -> tuple[LinearOperator, _Bar]:
    """``op`` behind a progress bar: ``(wrapped, bar)``; call ``bar.close()`` when done.

    ``expected`` is the number of products the run will probably take (the bar's total and the
    time estimate); ``None`` for a run whose length is not known in advance, which may give the
    ``typical`` range of its product count for the estimate instead. ``bar`` continues an open
    bar (several operators counted as one run) instead of starting one.
    """
    bar = _Bar(desc, expected, enabled, typical) if bar is None else bar
    if not enabled:
        return op, bar

    def matvec(v: Any) -> Any:
        out = op.matvec(v)
        bar.advance(1)
        return out

    def matmat(v: Any) -> Any:
        out = op.matmat(v)
        bar.advance(int(v.shape[1]))
        return out

    wrapped = LinearOperator(
        op.shape,
        matvec,
        matmat=matmat,
        dtype=op.dtype,
        xp=op.xp,
        device=op.device,
        symmetric=op.symmetric,
        positive_semidefinite=getattr(op, "positive_semidefinite", False),
    )
    get = getattr(op, "compression", None)
    if callable(get):  # a model's Hessian or GGN: keep its compression, counted on the same bar
        wrapped.compression = functools.cache(lambda: _counted_compression(get(), desc, bar))
    return wrapped, bar


def _counted_compression(comp: Compression | None, desc: str, bar: _Bar) -> Compression | None:
    """``comp`` with its operator's products counted on ``bar`` (:ref:`theory-compression`)."""
    if comp is None:
        return None
    small, _ = counting(comp.operator, desc, bar=bar)
    return Compression(small, comp.lift, comp.restrict)


@contextlib.contextmanager
def counted(
    op: LinearOperator,
    desc: str,
    expected: int | None = None,
    *,
    enabled: bool = True,
    typical: tuple[int, int] | None = None,
) -> Iterator[LinearOperator]:
    """:func:`counting` for a ``with`` block: yields the counted operator, closes its bar."""
    wrapped, bar = counting(op, desc, expected, enabled=enabled, typical=typical)
    try:
        yield wrapped
    finally:
        bar.close()


def counted_range(desc: str, count: int, step: int = 1, *, enabled: bool = True) -> Iterator[int]:
    """``range(0, count, step)`` behind a bar and a time estimate.

    For a loop of ``step`` products per pass (the last pass may do fewer).
    """
    bar = _Bar(desc, count, enabled)
    try:
        for k in range(0, count, step):
            yield k
            bar.advance(min(step, count - k))
    finally:
        bar.close()
