"""The micro-batcher: items in, batches out, closing on size or on time.

A batch closes when it holds ``max_size`` items or ``max_wait_s`` after its
first item arrived, whichever comes first, so a quiet stream still gets
low latency and a busy one gets full batches. ``put_many`` waits while
``max_pending`` items are buffered: that is the backpressure that keeps a
slow model or a slow broker from growing memory without bound.

Example::

    batcher = Batcher(max_size=64, max_wait_s=0.02, max_pending=256)
    await batcher.put_many(items)          # in the fetch task
    while (batch := await batcher.next_batch()) is not None:   # in the batch task
        ...
    await batcher.close()                  # remaining items come out as a last batch
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class BatcherClosed(Exception):
    """``put_many`` after ``close``."""


class Batcher(Generic[T]):
    def __init__(self, max_size: int, max_wait_s: float, max_pending: int) -> None:
        if max_size < 1 or max_pending < max_size or max_wait_s < 0:
            raise ValueError("need max_size >= 1, max_pending >= max_size and max_wait_s >= 0")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.max_pending = max_pending
        self._items: deque[T] = deque()
        self._first_at: float | None = None
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    async def put_many(self, items: Iterable[T]) -> None:
        """Buffer ``items``, waiting first while the buffer is full (backpressure)."""
        for item in items:
            while len(self._items) >= self.max_pending and not self._closed:
                self._arrived.set()  # wake the taker before waiting for room
                self._drained.clear()
                await self._drained.wait()
            if self._closed:
                raise BatcherClosed("batcher is closed")
            if not self._items:
                self._first_at = time.monotonic()
            self._items.append(item)
        self._arrived.set()

    async def next_batch(self) -> list[T] | None:
        """The next batch, or ``None`` once closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        while len(self._items) < self.max_size and not self._closed:
            first_at = self._first_at if self._first_at is not None else time.monotonic()
            remaining = first_at + self.max_wait_s - time.monotonic()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        batch = [self._items.popleft() for _ in range(min(self.max_size, len(self._items)))]
        # Items left over arrived with this batch's; their clock restarts now, so
        # a leftover waits at most one more max_wait (it usually fills at once).
        self._first_at = time.monotonic() if self._items else None
        if len(self._items) < self.max_pending:
            self._drained.set()
        return batch

    async def close(self) -> None:
        """Stop accepting items; what is buffered still comes out of ``next_batch``."""
        self._closed = True
        self._arrived.set()
        self._drained.set()
