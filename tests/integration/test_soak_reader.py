"""scripts/soak.py's score reader: what it counts at the end is what the scores topic holds."""

from __future__ import annotations

import argparse
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


async def test_placed_ids_are_found_where_the_broker_put_them(
    broker: EmbeddedBroker, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``produce`` records as each id's offset is where reading the input topic finds it."""
    monkeypatch.setitem(soak.TOPICS, "input", topics.input)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    state = soak.State()
    try:
        await soak.produce(producer, soak.Traffic(unique=True), state, 0, 40)
    finally:
        await producer.stop()
    assert set(state.placed) == set(state.sent_at)
    assert len(set(state.placed.values())) == 40  # no two ids share an offset
    missing_offset = (0, max(o for p, o in state.placed.values() if p == 0) + 5)
    places = {**state.placed, "never-sent": missing_offset}
    held = await asyncio.wait_for(soak.read_back(broker.bootstrap_servers, places), 60)
    assert held == {**{mid: mid for mid in state.placed}, "never-sent": None}


def test_unscored_ids_are_lost_only_below_the_committed_offset() -> None:
    """Committed past without a score is lost; at or above the commit it is waiting input."""
    state = soak.State()
    state.sent_at = dict.fromkeys(["a", "b", "c", "d", "e", "f"], 0.0)
    state.placed = {"a": (0, 4), "b": (0, 5), "c": (1, 9), "d": (1, 2), "e": (2, 0)}
    state.scored = {"d"}
    state.dead_letters = {"e": "empty_text"}
    committed = {0: 5, 1: 3}  # partition 2 has no commit yet
    assert soak.classify_unscored(state, committed) == {
        "lost": ["a"],
        "uncommitted": ["b", "c"],
        "unacknowledged": ["f"],
    }


def test_partition_report_sets_reported_ends_beside_the_acknowledged_ones() -> None:
    """The end the produce acks imply is the highest acknowledged offset + 1 per partition."""
    state = soak.State()
    state.placed = {"a": (0, 4), "b": (0, 9), "c": (1, 0)}
    report = soak.partition_report(state, {0: 3}, {0: 8, 1: 1}, {0: 10, 1: 1})
    assert report == {
        "0": {"committed": 3, "end_reported": 8, "end_reported_later": 10, "end_acknowledged": 10},
        "1": {"committed": 0, "end_reported": 1, "end_reported_later": 1, "end_acknowledged": 1},
    }
    assert soak.lag({0: 3}, {0: 8, 1: 1}) == 6


def test_the_result_with_a_lost_id_writes_as_json_and_markdown() -> None:
    """The whole result, lost ids and partition table included, serialises (a 10-minute run
    once died at this last step)."""
    state = soak.State()
    state.sent_at = {"a": 0.0, "b": 0.0}
    state.placed = {"a": (0, 0), "b": (0, 1)}
    state.scored = {"b"}
    committed, ends = {0: 2}, {0: 2}
    unscored = soak.classify_unscored(state, committed)
    partitions = soak.partition_report(state, committed, ends, ends)
    samples = [soak.Sample(float(t), 100.0, 0, 2, 1, 1.0, 1.0, 5.0, 9.0) for t in range(4)]
    result = soak.summarise(
        argparse.Namespace(minutes=1.0),
        10.0,
        5.0,
        samples,
        state,
        True,
        0,
        unscored,
        {"a": None},
        partitions,
    )
    assert orjson.loads(orjson.dumps(result))["lost_ids"] == [
        {"id": "a", "partition": 0, "offset": 0, "input_topic_holds": None}
    ]
    assert "a@0:0 (holds None)" in soak.markdown(result)
    assert result["verdict"]["nothing_lost"] is False
