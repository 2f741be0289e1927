"""The micro-batcher, in the style of Ray Serve's test_batching: force each way a batch closes."""

from __future__ import annotations

import asyncio
import time

import pytest

from stream.batcher import Batcher, BatcherClosed

HUGE_S = 3600.0


async def test_size_close_with_a_huge_timeout() -> None:
    batcher: Batcher[int] = Batcher(max_size=4, max_wait_s=HUGE_S, max_pending=16)
    await batcher.put_many(range(10))
    started = time.monotonic()
    assert await asyncio.wait_for(batcher.next_batch(), 2) == [0, 1, 2, 3]
    assert await asyncio.wait_for(batcher.next_batch(), 2) == [4, 5, 6, 7]
    assert time.monotonic() - started < 1.0


async def test_size_close_when_items_arrive_while_waiting() -> None:
    batcher: Batcher[int] = Batcher(max_size=3, max_wait_s=HUGE_S, max_pending=16)
    taker = asyncio.create_task(batcher.next_batch())
    for i in range(3):
        await asyncio.sleep(0.01)
        assert not taker.done()
        await batcher.put_many([i])
    assert await asyncio.wait_for(taker, 2) == [0, 1, 2]


async def test_time_close_with_zero_wait() -> None:
    batcher: Batcher[int] = Batcher(max_size=100, max_wait_s=0.0, max_pending=100)
    await batcher.put_many([1, 2])
    assert await asyncio.wait_for(batcher.next_batch(), 1) == [1, 2]


async def test_time_close_after_the_wait() -> None:
    wait_s = 0.05
    batcher: Batcher[str] = Batcher(max_size=100, max_wait_s=wait_s, max_pending=100)
    started = time.monotonic()
    await batcher.put_many(["a"])
    batch = await asyncio.wait_for(batcher.next_batch(), 2)
    elapsed = time.monotonic() - started
    assert batch == ["a"]
    assert wait_s * 0.9 <= elapsed < 1.0


async def test_wait_is_measured_from_the_first_item() -> None:
    # The taker starts late: the first item's wait is already over, so it closes at once.
    batcher: Batcher[int] = Batcher(max_size=100, max_wait_s=0.05, max_pending=100)
    await batcher.put_many([1])
    await asyncio.sleep(0.08)
    started = time.monotonic()
    assert await batcher.next_batch() == [1]
    assert time.monotonic() - started < 0.04


async def test_taker_waits_for_the_first_item() -> None:
    batcher: Batcher[int] = Batcher(max_size=2, max_wait_s=0.0, max_pending=4)
    taker = asyncio.create_task(batcher.next_batch())
    await asyncio.sleep(0.05)
    assert not taker.done()
    await batcher.put_many([7])
    assert await asyncio.wait_for(taker, 1) == [7]


async def test_close_flushes_buffered_items_then_returns_none() -> None:
    batcher: Batcher[int] = Batcher(max_size=10, max_wait_s=HUGE_S, max_pending=10)
    await batcher.put_many([1, 2, 3])
    await batcher.close()
    assert await asyncio.wait_for(batcher.next_batch(), 1) == [1, 2, 3]
    assert await batcher.next_batch() is None
    assert batcher.closed


async def test_close_wakes_a_waiting_taker_with_its_partial_batch() -> None:
    batcher: Batcher[int] = Batcher(max_size=10, max_wait_s=HUGE_S, max_pending=10)
    await batcher.put_many([1])
    taker = asyncio.create_task(batcher.next_batch())
    await asyncio.sleep(0.02)
    assert not taker.done()
    await batcher.close()
    assert await asyncio.wait_for(taker, 1) == [1]


async def test_empty_close_returns_none() -> None:
    batcher: Batcher[int] = Batcher(max_size=2, max_wait_s=HUGE_S, max_pending=2)
    taker = asyncio.create_task(batcher.next_batch())
    await asyncio.sleep(0.01)
    await batcher.close()
    assert await asyncio.wait_for(taker, 1) is None
    assert await batcher.next_batch() is None


async def test_put_after_close_raises() -> None:
    batcher: Batcher[int] = Batcher(max_size=2, max_wait_s=0, max_pending=2)
    await batcher.close()
    with pytest.raises(BatcherClosed):
        await batcher.put_many([1])


async def test_backpressure_blocks_until_a_batch_is_taken() -> None:
    batcher: Batcher[int] = Batcher(max_size=2, max_wait_s=HUGE_S, max_pending=4)
    putter = asyncio.create_task(batcher.put_many(range(6)))
    await asyncio.sleep(0.05)
    assert not putter.done(), "put_many must wait while max_pending items are buffered"
    assert len(batcher) == 4
    assert await asyncio.wait_for(batcher.next_batch(), 1) == [0, 1]
    await asyncio.wait_for(putter, 1)
    assert len(batcher) == 4
    rest = [await batcher.next_batch(), await batcher.next_batch()]
    assert rest == [[2, 3], [4, 5]]


async def test_backpressure_wakes_a_taker_that_waits_for_a_full_batch() -> None:
    # Regression: the producer filled the buffer and went to sleep while the taker
    # was still waiting on "more items arrived"; nobody woke it and both hung.
    batcher: Batcher[int] = Batcher(max_size=4, max_wait_s=HUGE_S, max_pending=4)
    taker = asyncio.create_task(batcher.next_batch())
    await asyncio.sleep(0.01)
    putter = asyncio.create_task(batcher.put_many(range(9)))
    assert await asyncio.wait_for(taker, 1) == [0, 1, 2, 3]
    assert await asyncio.wait_for(batcher.next_batch(), 1) == [4, 5, 6, 7]
    await asyncio.wait_for(putter, 1)
    await batcher.close()
    assert await asyncio.wait_for(batcher.next_batch(), 1) == [8]


async def test_close_releases_a_blocked_producer() -> None:
    batcher: Batcher[int] = Batcher(max_size=1, max_wait_s=HUGE_S, max_pending=1)
    putter = asyncio.create_task(batcher.put_many([1, 2]))
    await asyncio.sleep(0.02)
    assert not putter.done()
    await batcher.close()
    with pytest.raises(BatcherClosed):
        await asyncio.wait_for(putter, 1)
    assert await batcher.next_batch() == [1]


async def test_items_come_out_in_order_under_concurrency() -> None:
    batcher: Batcher[int] = Batcher(max_size=7, max_wait_s=0.001, max_pending=20)
    n = 1000

    async def produce() -> None:
        for start in range(0, n, 13):
            await batcher.put_many(range(start, min(n, start + 13)))
            await asyncio.sleep(0)
        await batcher.close()

    producer = asyncio.create_task(produce())
    seen: list[int] = []
    sizes: list[int] = []
    while (batch := await asyncio.wait_for(batcher.next_batch(), 2)) is not None:
        seen.extend(batch)
        sizes.append(len(batch))
    await producer
    assert seen == list(range(n))
    assert max(sizes) <= 7
    assert all(size >= 1 for size in sizes)


@pytest.mark.parametrize(
    ("max_size", "max_wait_s", "max_pending"),
    [(0, 0.0, 1), (4, 0.0, 3), (1, -0.1, 1)],
)
def test_invalid_limits(max_size: int, max_wait_s: float, max_pending: int) -> None:
    with pytest.raises(ValueError):
        Batcher(max_size, max_wait_s, max_pending)
