"""Fault injection: the broker frozen (SIGSTOP) for 20 s mid-stream, then resumed.

The worker must not die or need a restart: /healthz stays 200 throughout
(a liveness probe must not kill a worker for the broker's sake), /readyz
turns 503 once the broker has been silent for ``READY_STALE_S`` and 200
again after SIGCONT, and every message is scored.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from integration_helpers import OutputReader, Topics, WorkerFactory, chat_stream, produce

from stream.broker import EmbeddedBroker
from stream.pipeline import READY_STALE_S

pytestmark = pytest.mark.faults

FREEZE_S = 20.0


async def test_broker_frozen_for_20s_then_resumed(
    private_broker: EmbeddedBroker, private_topics: Topics, private_workers: WorkerFactory
) -> None:
    assert FREEZE_S > READY_STALE_S + 2, "the freeze must outlast the readiness window"
    bootstrap = private_broker.bootstrap_servers
    topics = private_topics
    records = chat_stream(1_200, "freeze")
    before, after = records[:600], records[600:]
    ids = {r.message_id for r in records if r.message_id}
    worker = private_workers()
    await worker.ready()
    await produce(bootstrap, topics.input, before)
    async with OutputReader(bootstrap, topics) as reader:
        while len(reader.out.scores) < 100:
            await reader.poll()

    rss_before = worker.rss_bytes()
    private_broker.freeze()
    frozen_at = time.monotonic()
    ready_codes: list[tuple[float, int | None]] = []
    health_codes: list[int | None] = []
    try:
        while time.monotonic() - frozen_at < FREEZE_S:
            ready_codes.append(
                (time.monotonic() - frozen_at, await asyncio.to_thread(worker.status, "/readyz"))
            )
            health_codes.append(await asyncio.to_thread(worker.status, "/healthz"))
            worker.assert_alive()
            await asyncio.sleep(0.5)
    finally:
        private_broker.thaw()
    thawed_at = time.monotonic()
    await worker.ready(timeout_s=90)
    back_after = time.monotonic() - thawed_at

    await produce(bootstrap, topics.input, after)
    async with OutputReader(bootstrap, topics) as reader:
        out = await reader.until(ids, timeout_s=180, alive=worker.assert_alive)
    dups = out.duplicates()
    went_503 = [t for t, code in ready_codes if code == 503]
    print(
        f"\nreadyz 503 from {went_503[0] if went_503 else None:.1f}s into the freeze; "
        f"200 again {back_after:.1f}s after SIGCONT; RSS {rss_before >> 20} -> "
        f"{worker.rss_bytes() >> 20} MiB; {len(dups)} ids scored twice"
    )
    assert all(code == 200 for code in health_codes), f"/healthz during the freeze: {health_codes}"
    assert went_503, f"/readyz never said 503 during a {FREEZE_S}s freeze: {ready_codes}"
    assert went_503[0] >= READY_STALE_S - 4, "not ready long before the broker went stale"
    assert ready_codes[-1][1] == 503
    assert out.score_ids() == ids
    assert worker.terminate() == 0
