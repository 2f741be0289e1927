"""scripts/soak.py's score reader: what it counts at the end is what the scores topic holds."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import sys
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from integration_helpers import Topics

from stream.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "soak.py")
assert _spec is not None and _spec.loader is not None
soak = importlib.util.module_from_spec(_spec)
sys.modules["soak"] = soak  # dataclasses look their module up
_spec.loader.exec_module(soak)


async def test_reader_catches_up_after_stop(
    broker: EmbeddedBroker, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped before its first fetch (left behind by a slow broker), it still reads every score."""
    monkeypatch.setitem(soak.TOPICS, "scores", topics.scores)
    monkeypatch.setitem(soak.TOPICS, "dlq", topics.dlq)
    ids = [f"m{i}" for i in range(600)]
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i, mid in enumerate(ids):
            await producer.send(topics.scores, orjson.dumps({"message_id": mid}), partition=i % 4)
        await producer.send_and_wait(topics.scores, orjson.dumps({"message_id": ids[0]}))
        raw = base64.b64encode(orjson.dumps({"message_id": "bad", "text": ""})).decode()
        letter = {"reason": "empty_text", "raw_b64": raw, "source": {"partition": 0, "offset": 7}}
        await producer.send_and_wait(topics.dlq, orjson.dumps(letter))
    finally:
        await producer.stop()
    state = soak.State()
    state.sent_at = dict.fromkeys([*ids, "bad"], 0.0)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(soak.read_scores(broker.bootstrap_servers, state, stop), 60)
    assert state.scored == set(ids)
    assert state.duplicates == 1
    assert state.dead_letters == {"bad": "empty_text"}
    # catch-up reads measure this reader's lateness, not the worker's latency
    assert state.all_latencies == []
