"""Fault injection: the model raises on some texts.

In-process: the real :class:`~stream.pipeline.ScoringPipeline` against the
real broker and the real ONNX model, wrapped so that inference raises for
any batch holding a text with "POISON" in it. A failing batch is split and
retried down to single texts; each poison message goes to the DLQ with
reason ``inference_error``, everything else in its batch is scored, and
the offsets of all of them are committed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from integration_helpers import (
    OutputReader,
    Topics,
    chat,
    chat_stream,
    committed_offsets,
    produce,
)

from classifiers.api import load_classifier
from stream.broker import EmbeddedBroker
from stream.kafka import make_consumer, make_producer
from stream.metrics import Metrics
from stream.pipeline import ScoringPipeline
from stream.policy import load_policy
from stream.schemas import DeadLetter
from stream.settings import load_settings

pytestmark = pytest.mark.faults


class PoisonedClassifier:
    """The real classifier, except that a batch with "POISON" in any text raises."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.version = inner.name, inner.version
        self.categories, self.thresholds = inner.categories, inner.thresholds
        self.provider = inner.provider
        self.batches: list[tuple[int, bool]] = []  # (size, poisoned) of every infer call

    def prepare(self, texts: Sequence[str]) -> tuple[list[str], Any]:
        return list(texts), self.inner.prepare(texts)

    def infer(self, prepared: tuple[list[str], Any]) -> np.ndarray:
        texts, inner = prepared
        poisoned = any("POISON" in t for t in texts)
        self.batches.append((len(texts), poisoned))
        if poisoned:
            raise RuntimeError("the model failed on this batch")
        return self.inner.infer(inner)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return self.infer(self.prepare(texts))


async def test_poison_texts_are_isolated_dead_lettered_and_the_rest_scored(
    broker: EmbeddedBroker, topics: Topics, model_dir: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    env = {
        "MODSTREAM_BOOTSTRAP_SERVERS": bootstrap,
        "MODSTREAM_MODEL_DIR": str(model_dir),
        "MODSTREAM_SESSION_TIMEOUT_MS": "6000",
        "MODSTREAM_MAX_BATCH_SIZE": "32",
        **topics.env(),
    }
    settings = load_settings(environ=env)
    inner = load_classifier(model_dir, cache_size=0, intra_op_threads=1)
    classifier = PoisonedClassifier(inner)
    policy = load_policy(None, inner.categories, inner.thresholds)
    metrics = Metrics()
    producer = make_producer(settings.kafka)
    consumer = make_consumer(settings.kafka)
    await producer.start()
    pipeline = ScoringPipeline(settings, classifier, metrics, policy, consumer, producer)
    consumer.subscribe([topics.input], listener=pipeline.rebalance_listener())
    await consumer.start()
    await pipeline.start()
    try:
        good = chat_stream(400, "inf")
        poison = [
            chat(f"inf-poison-{i}", f"innocent looking POISON text {i}", f"c-{i % 37}")
            for i in range(12)
        ]
        records = list(good)
        for i, rec in enumerate(poison):  # spread through the stream, one batch may get two
            records.insert(15 + i * 33, rec)
        placed = await produce(bootstrap, topics.input, records)
        good_ids = {r.message_id for r in good if r.message_id}
        poison_at = {
            where: rec.message_id
            for where, rec in zip(placed, records, strict=True)
            if rec.message_id and "poison" in rec.message_id
        }
        async with OutputReader(bootstrap, topics) as reader:
            out = await reader.until(good_ids, set(poison_at), timeout_s=180)
    finally:
        await pipeline.stop()
        await consumer.stop()
        await producer.stop()

    assert out.score_ids() == good_ids, "a poison message was scored, or a good one was not"
    assert len(out.dead) == len(poison)
    for o in out.dead:
        dl = DeadLetter.model_validate(o.value)
        assert dl.reason == "inference_error"
        assert "RuntimeError" in dl.error
        where = (dl.source.partition, dl.source.offset)
        assert where in poison_at
        raw = orjson.loads(base64.b64decode(dl.raw_b64))
        assert raw["message_id"] == poison_at[where]
    assert not out.duplicates()
    errors = metrics.errors.labels("inference")._value.get()
    assert errors == len(poison)
    # Split all the way down: every poison text failed alone, and good texts that
    # shared its batch were scored in halves that did not hold it.
    singles = sum(1 for size, poisoned in classifier.batches if size == 1 and poisoned)
    assert singles == len(poison)
    ends: dict[int, int] = {}
    for partition, offset in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    assert await committed_offsets(bootstrap, topics.group, topics.input) == ends
