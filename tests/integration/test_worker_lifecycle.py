"""A worker stopped mid-stream, hard (SIGKILL) or gracefully (SIGTERM), loses nothing.

SIGKILL: the restarted worker resumes from the last commit, so every
message is scored at least once; repeats are counted and printed.
SIGTERM: the worker drains, commits and exits 0, and the commit is exact:
an input has an output if and only if it is below the committed offset,
so a successor repeats nothing.
"""

from __future__ import annotations

import asyncio

from integration_helpers import (
    OutputReader,
    Topics,
    WorkerFactory,
    accounted_at_or_above,
    chat_stream,
    committed_offsets,
    produce,
    read_topic,
    unaccounted_below,
)

from stream.broker import EmbeddedBroker

N = 1_500
RATE = 150.0  # messages/s: production lasts ~10 s, so the stop lands mid-stream


async def _stop_when_flowing(reader: OutputReader, at_least: int, producing: asyncio.Task) -> int:
    """Poll outputs until ``at_least`` scores exist; returns how many there were."""
    while len(reader.out.scores) < at_least:
        await reader.poll()
        assert not producing.done(), "production finished before the stop: raise N or lower RATE"
    return len(reader.out.scores)


async def test_sigkill_mid_stream_then_restart_loses_nothing(
    broker: EmbeddedBroker, topics: Topics, workers: WorkerFactory
) -> None:
    bootstrap = broker.bootstrap_servers
    records = chat_stream(N, "kill")
    ids = {r.message_id for r in records if r.message_id}
    first = workers("first")
    await first.ready()
    async with OutputReader(bootstrap, topics) as reader:
        producing = asyncio.create_task(produce(bootstrap, topics.input, records, rate=RATE))
        seen = await _stop_when_flowing(reader, N // 10, producing)
        assert first.kill() == -9
        second = workers("second")
        await producing
        out = await reader.until(ids, timeout_s=300, alive=second.assert_alive)
    dups = out.duplicates()
    print(
        f"\nSIGKILL after {seen} scores: {len(out.score_ids())}/{N} scored, "
        f"{len(dups)} scored twice or more: {sorted(dups)[:20]}"
    )
    assert out.score_ids() == ids
    assert second.terminate() == 0


async def test_sigterm_mid_stream_drains_commits_exactly_and_exits_0(
    broker: EmbeddedBroker, topics: Topics, workers: WorkerFactory
) -> None:
    bootstrap = broker.bootstrap_servers
    records = chat_stream(N, "term")
    ids = {r.message_id for r in records if r.message_id}
    first = workers("first")
    await first.ready()
    async with OutputReader(bootstrap, topics) as reader:
        producing = asyncio.create_task(produce(bootstrap, topics.input, records, rate=RATE))
        await _stop_when_flowing(reader, N // 10, producing)
        code = await asyncio.to_thread(first.terminate, 60)
        assert code == 0, first.log_tail()
        assert "pipeline_stopped" in first.log_text()
        committed = await committed_offsets(bootstrap, topics.group, topics.input)
        inputs = await read_topic(bootstrap, topics.input)
        out = await reader.to_end()
        assert 0 < sum(committed.values()) < N, f"not a mid-stream stop: {committed}"
        missing = unaccounted_below(committed, inputs, out)
        assert not missing, f"committed past inputs with no output: {missing[:10]}"
        extra = accounted_at_or_above(committed, inputs, out)
        assert not extra, f"outputs produced but not committed by the drain: {extra[:10]}"
        # The successor starts exactly where the drain stopped: nothing is repeated.
        second = workers("second")
        await producing
        out = await reader.until(ids, timeout_s=300, alive=second.assert_alive)
    assert out.score_ids() == ids
    assert not out.duplicates(), f"repeated after a clean drain: {sorted(out.duplicates())[:10]}"
    assert second.terminate() == 0
