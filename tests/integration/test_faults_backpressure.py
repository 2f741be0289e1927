"""Fault injection: the output side stops accepting writes while input keeps arriving.

A Kafka-aware proxy in front of the broker holds back every Produce request
of the worker (its client id) while fetches, commits and heartbeats flow:
the scores, flags and dead-letter topics look unavailable to the worker
and to nobody else. 10,000 more messages arrive meanwhile. The worker must

* stop consuming after a bounded amount (backpressure): records consumed but
  not yet produced stay under what its queues can hold, and its RSS stays
  within a fixed margin however much input waits;
* commit nothing whose outputs are not on the output topics;
* once writes flow again, score everything, and stay alive throughout.

The slow variant holds writes for longer than the producer's request
timeout (30 s), so the ack stage's re-send path runs too.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_helpers import (
    OutputReader,
    ProxiedBroker,
    Rec,
    StallingProxy,
    Topics,
    Worker,
    chat,
    committed_offsets,
    create_topics,
    produce,
    read_topic,
    unaccounted_below,
    worker_env,
)

from stream.broker import free_port
from stream.settings import Settings

pytestmark = pytest.mark.faults

BACKLOG = 10_000
TEXT_BYTES = 1_000
RSS_MARGIN = 150 * 1024 * 1024


@pytest.fixture
def proxied() -> Iterator[tuple[ProxiedBroker, StallingProxy]]:
    broker = ProxiedBroker(proxy_port=free_port())
    proxy = StallingProxy(broker.port, port=broker.proxy_port).start()
    try:
        with broker:
            yield broker, proxy
    finally:
        proxy.stop()


def metric_total(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def consumed(worker: Worker) -> float:
    return metric_total(worker.http("GET", "/metrics").body.decode(), "modstream_messages_in_total")


def long_texts() -> list[str]:
    return [
        (f"variant {v}: " + "words of a long chat message " * 40)[:TEXT_BYTES] for v in range(5)
    ]


def backlog(n: int, prefix: str = "bulk") -> list[Rec]:
    """``n`` ~1 KB messages over a handful of texts (the score cache makes them cheap later)."""
    texts = long_texts()
    return [chat(f"{prefix}-{i:06d}", texts[i % 5], f"c-{i % 23}") for i in range(n)]


def queue_bound(settings: Settings) -> int:
    """Most records a worker may hold between fetch and produce: one fetch plus its queues."""
    b = settings.batching
    return settings.kafka.fetch_max_records + b.max_batch_size * (2 * b.max_inflight_batches + 2)


@pytest.mark.parametrize(
    "stall_s", [15.0, pytest.param(45.0, marks=pytest.mark.slow)], ids=["15s", "45s"]
)
async def test_outputs_unavailable_memory_bounded_nothing_committed_unproduced(
    proxied: tuple[ProxiedBroker, StallingProxy],
    model_dir: Path,
    tmp_path: Path,
    stall_s: float,
    record_property: object,
) -> None:
    broker, proxy = proxied
    bootstrap = broker.bootstrap_servers
    topics = Topics.unique("backpressure")
    await create_topics(bootstrap, [topics.input, *topics.outputs])
    env = worker_env(bootstrap, topics, model_dir)
    worker = Worker(env, tmp_path / "worker.log")
    try:
        await worker.ready()
        # Warm up on the same long texts: ONNX Runtime's arena grows to the largest
        # batch it has run and keeps that memory, which is not what is measured here.
        warm = backlog(300, "warm")
        await produce(bootstrap, topics.input, warm)
        async with OutputReader(bootstrap, topics) as reader:
            await reader.until({r.message_id for r in warm if r.message_id}, timeout_s=120)
            rss0, in0 = worker.rss_bytes(), consumed(worker)

            proxy.stall(env["MODSTREAM_CLIENT_ID"])
            bulk = backlog(BACKLOG)
            await produce(bootstrap, topics.input, bulk)
            stalled_at = time.monotonic()
            samples = []
            while time.monotonic() - stalled_at < stall_s:
                worker.assert_alive()
                committed = await committed_offsets(bootstrap, topics.group, topics.input)
                samples.append((worker.rss_bytes(), consumed(worker), committed))
                await asyncio.sleep(1.0)
            await reader.to_end()
            inputs = await read_topic(bootstrap, topics.input)
            out_during = len(reader.out.scores)
            for _, _, committed in samples:
                missing = unaccounted_below(committed, inputs, reader.out)
                assert not missing, f"committed with no output on the topics: {missing[:10]}"

            proxy.release()
            ids = {r.message_id for r in warm + bulk if r.message_id}
            out = await reader.until(ids, timeout_s=300, alive=worker.assert_alive)
        final = await committed_offsets(bootstrap, topics.group, topics.input)
        assert not unaccounted_below(final, inputs, out)
        assert worker.terminate() == 0, worker.log_tail()
    finally:
        worker.close()

    peak_rss = max(s[0] for s in samples)
    held = max(s[1] for s in samples) - in0
    bound = queue_bound(Settings())
    dups = out.duplicates()
    print(
        f"\nwrites held {stall_s:.0f}s ({proxy.held} produce requests held): consumed "
        f"{held:.0f} of {BACKLOG} waiting (bound {bound}); RSS {rss0 >> 20} -> peak "
        f"{peak_rss >> 20} MiB; scores during the stall: {out_during - len(warm)}; "
        f"{len(dups)} ids scored more than once"
    )
    record_property("held_records", held)  # type: ignore[operator]
    record_property("peak_rss_mib", peak_rss >> 20)  # type: ignore[operator]
    assert proxy.held > 0, "the proxy never saw the worker produce: the test proves nothing"
    assert out_during == len(warm), "outputs were written while writes were held"
    assert held <= bound, f"consumed {held} records with nowhere to write them (bound {bound})"
    assert peak_rss - rss0 < RSS_MARGIN, f"RSS grew {(peak_rss - rss0) >> 20} MiB"
    assert out.score_ids() == ids
