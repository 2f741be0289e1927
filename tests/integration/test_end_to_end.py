"""5,000 messages through one real worker: every one accounted for, exactly once, in order.

One run (module fixture) feeds 4,950 well-formed messages and 50 malformed
ones (every dead-letter reason) to a worker on 4 partitions; the tests
below each judge one property of what lands on the output topics.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from integration_helpers import (
    OutputReader,
    Outputs,
    Rec,
    Topics,
    Worker,
    chat_stream,
    committed_offsets,
    create_topics,
    interleave,
    malformed,
    produce,
    worker_env,
)

from stream.broker import EmbeddedBroker
from stream.schemas import DeadLetter, FlagEvent, ScoreEvent

GOOD = 4_950
BAD = 50
MAX_TEXT_CHARS = 2_000


@dataclass
class Run:
    topics: Topics
    records: list[Rec]
    placed: list[tuple[int, int]]  # (partition, offset) of each record
    out: Outputs
    committed: dict[int, int]
    worker_exit: int
    log: str


@pytest.fixture(scope="module")
def run(
    broker: EmbeddedBroker, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    bootstrap = broker.bootstrap_servers
    topics = Topics.unique("e2e")
    asyncio.run(create_topics(bootstrap, [topics.input, *topics.outputs]))
    records = interleave(chat_stream(GOOD, "e2e"), malformed(BAD, "e2e", MAX_TEXT_CHARS))
    worker = Worker(
        worker_env(bootstrap, topics, model_dir, MODSTREAM_MAX_TEXT_CHARS=str(MAX_TEXT_CHARS)),
        tmp_path_factory.mktemp("e2e") / "worker.log",
    )
    try:
        worker.wait_ready()

        async def go() -> tuple[list[tuple[int, int]], Outputs]:
            placed = await produce(bootstrap, topics.input, records)
            dead = {p for p, r in zip(placed, records, strict=True) if r.message_id is None}
            ids = {r.message_id for r in records if r.message_id}
            async with OutputReader(bootstrap, topics) as reader:
                out = await reader.until(ids, dead, timeout_s=600, alive=worker.assert_alive)
            return placed, out

        placed, out = asyncio.run(go())
        code = worker.terminate()
        committed = asyncio.run(committed_offsets(bootstrap, topics.group, topics.input))
        yield Run(topics, records, placed, out, committed, code, worker.log_text())
    finally:
        worker.close()


def test_exactly_one_score_per_well_formed_message(run: Run) -> None:
    counts = run.out.score_counts()
    assert len(counts) == GOOD
    assert {r.message_id for r in run.records if r.message_id} == set(counts)
    assert not run.out.duplicates(), f"duplicates in a clean run: {run.out.duplicates()}"
    assert len(run.out.scores) == GOOD


def test_dead_letters_carry_reason_and_source(run: Run) -> None:
    expected = {
        placed: rec
        for placed, rec in zip(run.placed, run.records, strict=True)
        if rec.message_id is None
    }
    assert len(run.out.dead) == BAD
    got = {}
    for o in run.out.dead:
        dl = DeadLetter.model_validate(o.value)
        assert dl.source.topic == run.topics.input
        got[(dl.source.partition, dl.source.offset)] = dl
    assert set(got) == set(expected)
    for where, dl in got.items():
        rec = expected[where]
        assert dl.reason == rec.reason, (where, dl.error)
        assert dl.error
        assert rec.key is not None and dl.source.key == rec.key.decode()
        raw = base64.b64decode(dl.raw_b64)
        if dl.reason == "too_large":
            assert rec.value is not None and rec.value.startswith(raw) and len(raw) <= 1024
        else:
            assert raw == (rec.value or b"")
    assert Counter(dl.reason for dl in got.values()) == Counter(
        r.reason for r in run.records if r.reason
    )


def test_every_output_validates_against_the_schemas(run: Run) -> None:
    for o in run.out.scores:
        ScoreEvent.model_validate(o.value)
    for o in run.out.flagged:
        FlagEvent.model_validate(o.value)
    for o in run.out.dead:
        DeadLetter.model_validate(o.value)


def test_every_flag_matches_its_score(run: Run) -> None:
    scores = {o.value["message_id"]: o.value for o in run.out.scores}
    keys = {o.value["message_id"]: o.key for o in run.out.scores}
    flagged_in_scores = {mid for mid, s in scores.items() if s["flagged"]}
    flag_ids = [o.value["message_id"] for o in run.out.flagged]
    assert flag_ids, "no message was flagged: the check below would prove nothing"
    assert len(flag_ids) == len(set(flag_ids)), "a message was flagged twice"
    assert set(flag_ids) == flagged_in_scores
    for o in run.out.flagged:
        flag, score = o.value, scores[o.value["message_id"]]
        assert flag["flagged"] is True
        assert flag["category_scores"] == score["category_scores"]
        assert flag["categories"] == score["categories"]
        assert flag["triggered"] == [c for c, on in score["categories"].items() if on]
        assert o.key == keys[flag["message_id"]]


def test_per_key_order_is_kept_on_the_scores_topic(run: Run) -> None:
    sent: dict[bytes, list[str]] = defaultdict(list)
    for rec in run.records:
        if rec.message_id and rec.key:
            sent[rec.key].append(rec.message_id)
    seen: dict[bytes, list[str]] = defaultdict(list)
    partition_of: dict[bytes, set[int]] = defaultdict(set)
    for o in sorted(run.out.scores, key=lambda o: (o.partition, o.offset)):
        assert o.key is not None
        seen[o.key].append(o.value["message_id"])
        partition_of[o.key].add(o.partition)
    assert all(len(p) == 1 for p in partition_of.values()), "a key spans output partitions"
    assert seen == sent


def test_sigterm_after_the_run_commits_everything(run: Run) -> None:
    assert run.worker_exit == 0, run.log[-2000:]
    ends: dict[int, int] = defaultdict(int)
    for partition, offset in run.placed:
        ends[partition] = max(ends[partition], offset + 1)
    assert run.committed == dict(ends)
