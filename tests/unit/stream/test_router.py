"""Routing: one score per message, flags for flagged ones, dead letters with their key."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from classifiers.taxonomy import CATEGORIES
from stream.decode import RecordRef, dead_letter
from stream.policy import Policy
from stream.router import Entry, Router
from stream.schemas import ChatMessage, DeadLetter, FlagEvent, ScoreEvent
from stream.settings import KafkaSettings

KAFKA = KafkaSettings()
POLICY = Policy(CATEGORIES, dict.fromkeys(CATEGORIES, 0.5))
HARASSMENT = CATEGORIES.index("harassment")
MINORS = CATEGORIES.index("sexual/minors")


def entry(i: int, text: str = "hello", key: bytes | None = b"conv-1", **extra: str) -> Entry:
    ref = RecordRef("chat.messages", 0, i, key, int(time.time() * 1000) - 50)
    return Entry(ref, ChatMessage(message_id=f"m{i}", text=text, **extra))


def dead_entry(i: int, key: bytes | None) -> Entry:
    ref = RecordRef("chat.messages", 1, i, key, 0)
    return Entry(ref, None, dead_letter(ref, b"{", "invalid_json", "value is not JSON"))


def scores(n: int, *hot: tuple[int, int, float]) -> np.ndarray:
    """``n`` rows of low scores, with ``(row, column, score)`` set high."""
    out = np.full((n, len(CATEGORIES)), 0.01, np.float32)
    for r, c, value in hot:
        out[r, c] = value
    return out


def make_router(include_text: bool = True) -> Router:
    return Router(KAFKA, POLICY, "modstream-minilm@1.0.0", include_text)


def test_one_score_record_per_message_and_flags_only_for_flagged() -> None:
    entries = [entry(0, "nice"), entry(1, "you idiot", user_id="u1"), entry(2, "ok")]
    s = scores(3, (1, HARASSMENT, 0.9))
    routed = make_router().route(entries, s)
    by_topic: dict[str, list[dict[str, object]]] = {}
    for rec in routed.records:
        by_topic.setdefault(rec.topic, []).append(orjson.loads(rec.value))
        assert rec.key == b"conv-1"
    assert [e["message_id"] for e in by_topic[KAFKA.scores_topic]] == ["m0", "m1", "m2"]
    assert [e["flagged"] for e in by_topic[KAFKA.scores_topic]] == [False, True, False]
    (flag,) = by_topic[KAFKA.flagged_topic]
    assert flag["message_id"] == "m1"
    assert flag["user_id"] == "u1"
    assert flag["action"] == "warn"
    assert flag["triggered"] == ["harassment"]
    assert flag["text"] == "you idiot"
    assert routed.flagged == [(["harassment"], "warn")]
    assert KAFKA.dlq_topic not in by_topic


def test_outputs_validate_against_the_schemas() -> None:
    entries = [entry(0, "bad", conversation_id="c", sent_at="2026-01-01T00:00:00Z"), entry(1)]
    s = scores(2, (0, HARASSMENT, 0.8), (0, MINORS, 0.7))
    routed = make_router().route(entries, s)
    topics = [r.topic for r in routed.records]
    assert topics == [KAFKA.scores_topic, KAFKA.flagged_topic, KAFKA.scores_topic]
    first = ScoreEvent.model_validate_json(routed.records[0].value)
    flag = FlagEvent.model_validate_json(routed.records[1].value)
    assert first.flagged and first.categories["harassment"] and first.categories["sexual/minors"]
    assert list(first.category_scores) == list(CATEGORIES)
    assert list(first.categories) == list(CATEGORIES)
    assert first.category_scores["harassment"] == pytest.approx(0.8, abs=1e-6)
    assert first.model == "modstream-minilm@1.0.0"
    assert first.policy == "default@1"
    assert first.sent_at == "2026-01-01T00:00:00Z"
    assert first.latency_ms is not None and first.latency_ms >= 0
    assert flag.action == "block"  # sexual/minors outranks harassment's warn
    assert flag.triggered == ["sexual/minors", "harassment"]
    second = ScoreEvent.model_validate_json(routed.records[2].value)
    assert not second.flagged and not any(second.categories.values())


def test_text_left_out_of_flags_when_disabled() -> None:
    routed = make_router(include_text=False).route(
        [entry(0, "secret text")], scores(1, (0, HARASSMENT, 0.9))
    )
    flag = orjson.loads(routed.records[1].value)
    assert "text" in flag and flag["text"] is None
    assert b"secret text" not in b"".join(r.value for r in routed.records)


def test_dead_letters_are_routed_with_their_key_and_take_no_score_row() -> None:
    entries = [entry(0, "a"), dead_entry(1, b"conv-9"), dead_entry(2, None), entry(3, "b")]
    s = scores(2, (1, HARASSMENT, 0.95))  # rows for the two messages only
    routed = make_router().route(entries, s)
    topics = [(r.topic, r.key) for r in routed.records]
    assert topics == [
        (KAFKA.scores_topic, b"conv-1"),
        (KAFKA.dlq_topic, b"conv-9"),
        (KAFKA.dlq_topic, None),
        (KAFKA.scores_topic, b"conv-1"),
        (KAFKA.flagged_topic, b"conv-1"),
    ]
    letter = DeadLetter.model_validate_json(routed.records[1].value)
    assert letter.reason == "invalid_json"
    assert letter.source.key == "conv-9"
    dlq = [
        DeadLetter.model_validate_json(r.value)
        for r in routed.records
        if r.topic == KAFKA.dlq_topic
    ]
    assert [d.reason for d in dlq] == ["invalid_json", "invalid_json"]
    last = ScoreEvent.model_validate_json(routed.records[3].value)
    assert last.message_id == "m3" and last.flagged


def test_scores_are_rounded_floats() -> None:
    s = np.full((1, len(CATEGORIES)), 0.123456789, np.float32)
    event = orjson.loads(make_router().route([entry(0)], s).records[0].value)
    assert all(isinstance(v, float) for v in event["category_scores"].values())
    assert event["category_scores"]["hate"] == pytest.approx(0.123457, abs=1e-9)


def test_only_dead_letters() -> None:
    routed = make_router().route([dead_entry(0, None)], np.zeros((0, len(CATEGORIES)), np.float32))
    assert [r.topic for r in routed.records] == [KAFKA.dlq_topic]
    assert routed.flagged == []
