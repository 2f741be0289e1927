"""Kafka clients: consumer and producer built from settings, topic creation, batched produce.

The scoring path writes whole batches: :class:`BatchedWriter` groups output
records per topic-partition into aiokafka ``BatchBuilder``s, which costs a
few microseconds a record instead of a coroutine and a future per
``send()``. Keys are partitioned with Kafka's default (murmur2) partitioner,
so a conversation's results land on one partition in order, as they would
with any other Kafka client.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from stream.settings import KafkaSettings


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security options shared by every client; the password never leaves here."""
    opts: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
        if kafka.ssl_certfile:
            context.load_cert_chain(
                str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
            )
        opts["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        opts["sasl_mechanism"] = kafka.sasl_mechanism
        opts["sasl_plain_username"] = kafka.sasl_username
        opts["sasl_plain_password"] = kafka.password()
    return opts


def make_consumer(kafka: KafkaSettings) -> AIOKafkaConsumer:
    """A consumer with manual commits: offsets are committed only after outputs are acked.

    Not subscribed yet: the caller subscribes with its rebalance listener.
    """
    return AIOKafkaConsumer(
        group_id=kafka.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=kafka.fetch_max_records,
        fetch_max_bytes=16 * 1024 * 1024,
        # How long the broker may hold a fetch with no data. aiokafka's 500 ms
        # default showed up whole in end-to-end latency at low load (Tansu
        # answers at the deadline); 20 ms costs a few idle requests a second.
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=max(500, kafka.session_timeout_ms // 10),
        max_poll_interval_ms=300_000,
        retry_backoff_ms=200,
        **client_options(kafka),
    )


def make_producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    """An idempotent-style producer: all replicas ack before a commit may happen."""
    return AIOKafkaProducer(
        acks="all",
        linger_ms=0,  # BatchedWriter hands over whole batches; waiting adds nothing
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        request_timeout_ms=30_000,
        retry_backoff_ms=200,
        **client_options(kafka),
    )


async def ensure_topics(kafka: KafkaSettings, partitions: int = 1) -> None:
    """Create the output topics (and the input topic) when missing; existing ones are left alone."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [kafka.input_topic, kafka.scores_topic, kafka.flagged_topic, kafka.dlq_topic]
        new = [
            NewTopic(name=t, num_partitions=partitions, replication_factor=1)
            for t in dict.fromkeys(wanted)
            if t not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes


@lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    # murmur2 is pure Python; conversation keys repeat, so cache the hash.
    return murmur2(key) & 0x7FFFFFFF


class BatchedWriter:
    """Produces many records as a few batches and returns the futures of their acks."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._round_robin = 0

    async def send(self, records: Iterable[OutRecord]) -> list[asyncio.Future[Any]]:
        """Queue ``records`` for sending; await the returned futures for the broker's acks.

        Raises whatever aiokafka raises when a batch cannot be queued (for example
        an unknown topic after the metadata timeout).
        """
        groups: dict[tuple[str, int], list[OutRecord]] = {}
        partitions: dict[str, list[int]] = {}
        for rec in records:
            parts = partitions.get(rec.topic)
            if parts is None:
                parts = sorted(await self._producer.partitions_for(rec.topic))
                partitions[rec.topic] = parts
            if rec.key is None:
                self._round_robin += 1
                part = parts[self._round_robin % len(parts)]
            else:
                part = parts[_key_hash(rec.key) % len(parts)]
            groups.setdefault((rec.topic, part), []).append(rec)
        futures: list[asyncio.Future[Any]] = []
        for (topic, part), recs in groups.items():
            batch = self._producer.create_batch()
            for rec in recs:
                if batch.append(key=rec.key, value=rec.value, timestamp=None) is None:
                    futures.append(await self._producer.send_batch(batch, topic, partition=part))
                    batch = self._producer.create_batch()
                    if batch.append(key=rec.key, value=rec.value, timestamp=None) is None:
                        raise ValueError(
                            f"a record for {topic} is larger than the producer's batch size"
                        )
            futures.append(await self._producer.send_batch(batch, topic, partition=part))
        return futures
