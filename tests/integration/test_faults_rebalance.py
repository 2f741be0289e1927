"""Fault injection: group membership changing mid-stream.

A second worker joins (partitions move to it), later leaves with SIGTERM
(they move back), then a third joins and the first is SIGTERMed while that
rebalance is in progress (between giving up its partitions and rejoining).
Every message must be scored; repeats are counted and printed.
"""

from __future__ import annotations

import asyncio

import pytest
from integration_helpers import OutputReader, Topics, Worker, WorkerFactory, chat_stream, produce

from stream.broker import EmbeddedBroker

pytestmark = pytest.mark.faults


async def scored_more(reader: OutputReader, n: int, worker: Worker) -> None:
    """Poll until ``n`` more scores arrived (the group is making progress)."""
    target = len(reader.out.scores) + n
    while len(reader.out.scores) < target:
        await reader.poll()
        worker.assert_alive()


async def wait_count(worker: Worker, event: str, count: int, poll_s: float = 0.1) -> None:
    """Wait until ``event`` appears ``count`` times in the worker's log."""
    for _ in range(int(90 / poll_s)):
        if worker.log_text().count(event) >= count:
            return
        worker.assert_alive()
        await asyncio.sleep(poll_s)
    raise AssertionError(f"{event} not logged {count} times in 90s:\n{worker.log_tail()}")


async def test_join_leave_and_sigterm_during_rebalance_lose_nothing(
    broker: EmbeddedBroker, topics: Topics, workers: WorkerFactory, record_property: object
) -> None:
    bootstrap = broker.bootstrap_servers
    records = chat_stream(2_000, "rebalance")
    ids = {r.message_id for r in records if r.message_id}
    a = workers("a")
    await a.ready()
    async with OutputReader(bootstrap, topics) as reader:
        producing = asyncio.create_task(produce(bootstrap, topics.input, records, rate=200.0))
        await scored_more(reader, 150, a)

        assigned = a.log_text().count("partitions_assigned")
        b = workers("b")  # joins: A gives up half its partitions
        await b.ready()
        await asyncio.to_thread(b.wait_log, "partitions_assigned", 60)
        await wait_count(a, "partitions_assigned", assigned + 1)
        await scored_more(reader, 150, a)
        assigned = a.log_text().count("partitions_assigned")
        assert await asyncio.to_thread(b.terminate, 60) == 0, b.log_tail()  # leaves
        await wait_count(a, "partitions_assigned", assigned + 1)  # A has all partitions again
        await scored_more(reader, 100, a)

        revoked = a.log_text().count("partitions_revoked")
        c = workers("c")  # joins: A is asked to rejoin; SIGTERM it right then
        await wait_count(a, "partitions_revoked", revoked + 1, poll_s=0.01)
        code_a = await asyncio.to_thread(a.terminate, 60)
        await c.ready()
        await producing
        out = await reader.until(ids, timeout_s=300, alive=c.assert_alive)
    dups = out.duplicates()
    print(
        f"\nA exit {code_a} (SIGTERM during a rebalance); {len(out.score_ids())}/{len(ids)} "
        f"scored; {len(dups)} ids scored more than once: {sorted(dups.items())[:30]}"
    )
    record_property("duplicate_ids", len(dups))  # type: ignore[operator]
    assert code_a == 0, a.log_tail()
    assert out.score_ids() == ids
    assert c.terminate() == 0
