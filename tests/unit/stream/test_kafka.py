"""BatchedWriter with a fake producer: Kafka's partitioner, per-partition order, batch splits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from stream.kafka import BatchedWriter, OutRecord, client_options
from stream.settings import load_settings


class FakeBatch:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: int | None) -> object | None:
        if len(self.records) >= self.capacity or len(value) > 1000:
            return None  # full, as aiokafka's BatchBuilder says it
        self.records.append((key, value))
        return object()


class FakeProducer:
    """The three producer methods BatchedWriter uses, recording what was sent."""

    def __init__(self, partitions: dict[str, int], batch_capacity: int = 1000) -> None:
        self.partitions = partitions
        self.batch_capacity = batch_capacity
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.batch_capacity)

    async def send_batch(
        self, batch: FakeBatch, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, batch.records))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result((topic, partition))
        return fut


def placed(producer: FakeProducer) -> dict[tuple[str, int], list[tuple[bytes | None, bytes]]]:
    out: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
    for topic, part, records in producer.sent:
        out.setdefault((topic, part), []).extend(records)
    return out


async def test_keys_land_where_kafkas_default_partitioner_puts_them() -> None:
    producer = FakeProducer({"scores": 6})
    keys = [f"conv-{i}".encode() for i in range(200)] + [b"", b"\xff\x00", "é".encode()]
    records = [OutRecord("scores", k, b"v") for k in keys]
    futures = await BatchedWriter(producer).send(records)
    assert len(futures) == len({part for _, part, _ in producer.sent})
    all_parts = list(range(6))
    for (topic, part), recs in placed(producer).items():
        assert topic == "scores"
        for key, _ in recs:
            assert part == DefaultPartitioner()(key, all_parts, all_parts)
    assert sum(len(r) for r in placed(producer).values()) == len(keys)
    assert len(placed(producer)) > 1  # 200 keys do spread


async def test_same_key_same_partition_and_order_kept() -> None:
    producer = FakeProducer({"scores": 4, "flags": 3})
    records = []
    for i in range(60):
        key = f"conv-{i % 5}".encode()
        records.append(OutRecord("scores", key, f"{key.decode()}:{i}".encode()))
        if i % 3 == 0:
            records.append(OutRecord("flags", key, f"{key.decode()}:{i}".encode()))
    await BatchedWriter(producer).send(records)
    where: dict[tuple[str, bytes | None], set[int]] = {}
    for (topic, part), recs in placed(producer).items():
        for k, _ in recs:
            where.setdefault((topic, k), set()).add(part)
        # order within a partition is the order records were given
        expected = [
            (r.key, r.value) for r in records if r.topic == topic and r.key in {k for k, _ in recs}
        ]
        assert recs == expected
    assert all(len(parts) == 1 for parts in where.values())


async def test_full_batches_are_split_without_reordering() -> None:
    producer = FakeProducer({"t": 1}, batch_capacity=3)
    records = [OutRecord("t", b"k", str(i).encode()) for i in range(10)]
    futures = await BatchedWriter(producer).send(records)
    assert [len(r) for _, _, r in producer.sent] == [3, 3, 3, 1]
    assert [v for _, v in placed(producer)[("t", 0)]] == [str(i).encode() for i in range(10)]
    assert len(futures) == 4
    assert all(f.done() for f in futures)


async def test_a_record_larger_than_a_batch_raises() -> None:
    producer = FakeProducer({"t": 1})
    with pytest.raises(ValueError, match="larger than the producer's batch size"):
        await BatchedWriter(producer).send([OutRecord("t", b"k", b"x" * 2000)])


async def test_unkeyed_records_spread_over_partitions() -> None:
    producer = FakeProducer({"dlq": 3})
    await BatchedWriter(producer).send([OutRecord("dlq", None, b"v") for _ in range(9)])
    assert {part for _, part, _ in producer.sent} == {0, 1, 2}


async def test_nothing_to_send() -> None:
    producer = FakeProducer({})
    assert await BatchedWriter(producer).send([]) == []
    assert producer.sent == []


def test_client_options_carry_sasl_but_plaintext_carries_nothing_secret() -> None:
    plain = client_options(load_settings(environ={}).kafka)
    assert plain["security_protocol"] == "PLAINTEXT"
    assert "sasl_plain_password" not in plain and "ssl_context" not in plain
    sasl = client_options(
        load_settings(
            environ={
                "MODSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "MODSTREAM_SASL_MECHANISM": "SCRAM-SHA-512",
                "MODSTREAM_SASL_USERNAME": "svc",
                "MODSTREAM_SASL_PASSWORD": "pw",
            }
        ).kafka
    )
    assert (sasl["sasl_mechanism"], sasl["sasl_plain_username"], sasl["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "svc",
        "pw",
    )
