"""Fault injection: poison input, generated with hypothesis, into one running worker.

Invalid JSON, invalid UTF-8, lone surrogates, wrong types, missing fields,
deeply nested JSON, control characters, empty text, 10 MB values, a
1,000,000-character text, and keys and header values that are not UTF-8.
Every record must end as exactly what the decoder says it is (a score, or
a dead letter with that reason, at that source offset), and the worker must
stay alive with /healthz 200 the whole time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from integration_helpers import (
    OutputReader,
    Rec,
    Topics,
    Worker,
    module_worker,
    produce,
)

from stream.broker import EmbeddedBroker
from stream.decode import Decoder, RecordRef
from stream.schemas import ChatMessage, DeadLetter
from stream.settings import LimitSettings

pytestmark = pytest.mark.faults

LIMITS = LimitSettings()  # the worker runs with the defaults
ORACLE = Decoder(LIMITS.max_message_bytes, LIMITS.max_text_chars)
PRODUCER_MAX_REQUEST = 16 * 1024 * 1024


@dataclass
class Live:
    broker: EmbeddedBroker
    topics: Topics
    worker: Worker
    loop: asyncio.AbstractEventLoop
    reader: OutputReader

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def live(
    broker: EmbeddedBroker, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    with module_worker(
        broker.bootstrap_servers, model_dir, tmp_path_factory.mktemp("poison"), "poison"
    ) as (topics, worker):
        loop = asyncio.new_event_loop()

        async def open_reader() -> OutputReader:
            return await OutputReader(broker.bootstrap_servers, topics).__aenter__()

        reader = loop.run_until_complete(open_reader())
        try:
            yield Live(broker, topics, worker, loop, reader)
        finally:
            loop.run_until_complete(reader.__aexit__(None, None, None))
            loop.close()


# -- strategies ----------------------------------------------------------------------------


def uid() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


def encode(obj: Any, ascii_only: bool) -> bytes:
    """JSON bytes; lone surrogates become \\udXXX escapes or, unescaped, invalid UTF-8."""
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


any_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=80
)  # includes control characters and lone surrogates
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def chat_like(draw: st.DrawFn) -> bytes:
    """An object shaped like a chat message, each field possibly missing or of a wrong type."""
    body: dict[str, Any] = {}
    mid = draw(st.sampled_from(["ok", "ok", "missing", "empty", "wrong"]))
    if mid == "ok":
        body["message_id"] = uid()
    elif mid == "empty":
        body["message_id"] = ""
    elif mid == "wrong":
        body["message_id"] = draw(json_values.filter(lambda v: not isinstance(v, str)))
    text = draw(st.sampled_from(["text", "text", "blank", "missing", "wrong", "controls"]))
    if text == "text":
        body["text"] = draw(any_text)
    elif text == "blank":
        body["text"] = draw(st.sampled_from(["", " ", "\n\t ", "\u3000", "\u00a0\u2028"]))
    elif text == "controls":
        body["text"] = "ctl " + draw(
            st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1)
        )
    elif text == "wrong":
        body["text"] = draw(json_values.filter(lambda v: not isinstance(v, str)))
    for extra in draw(
        st.lists(st.sampled_from(["user_id", "sent_at", "metadata", "tenant_id"]), unique=True)
    ):
        body[extra] = draw(json_values)
    return encode(body, draw(st.booleans()))


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([63, 65, 200, 1_023, 1_025, 5_000]))
    inner = "[" * depth + "]" * depth
    return f'{{"message_id": "{uid()}", "text": "deep", "metadata": {{"x": {inner}}}}}'.encode()


@st.composite
def raw_bytes(draw: st.DrawFn) -> bytes:
    prefix = draw(st.sampled_from([b"", b"{", b'{"message_id": "x", "text": "', b"\xef\xbb\xbf"]))
    return prefix + draw(st.binary(max_size=200))


@st.composite
def bad_utf8(draw: st.DrawFn) -> bytes:
    junk = draw(
        st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
    )
    return b'{"message_id": "' + uid().encode() + b'", "text": "bad ' + junk + b' bytes"}'


def huge(kind: str) -> bytes:
    if kind == "10MB value":
        return b'{"message_id": "' + uid().encode() + b'", "text": "' + b"a" * 10_000_000 + b'"}'
    if kind == "10MB binary":
        return bytes(range(256)) * 40_000
    # a million characters in under max_message_bytes (1 MiB): only the text limit stops it
    return json.dumps({"message_id": uid(), "text": "x" * 1_000_000}).encode()


values = st.one_of(
    chat_like(),
    nested(),
    raw_bytes(),
    bad_utf8(),
    json_values.map(lambda v: encode(v, True)),
    st.just(None),  # tombstone
    st.sampled_from(["10MB value", "10MB binary", "1M-char text"]).map(huge),
)
keys = st.none() | st.binary(max_size=40)
headers = st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=40)), max_size=3).map(tuple)
records = st.lists(
    st.builds(Rec, value=values, key=keys, headers=headers).map(
        lambda r: r if r.value is not None or r.key else Rec(None, b"tombstone", r.headers)
    ),  # a Kafka record needs a key or a value
    min_size=1,
    max_size=6,
)


def expectation(rec: Rec) -> ChatMessage | DeadLetter:
    return ORACLE.decode(rec.value, RecordRef("t", 0, 0, rec.key, 0))


# -- the test ------------------------------------------------------------------------------


def check_batch(live: Live, batch: list[Rec]) -> None:
    expected = [expectation(r) for r in batch]
    for e in expected:
        # Generated ids are unique; a raw-bytes draw that decodes to a message is not.
        assume(not isinstance(e, ChatMessage) or e.message_id.startswith("p-"))
    placed = live.run(
        produce(
            live.broker.bootstrap_servers,
            live.topics.input,
            batch,
            max_request_size=PRODUCER_MAX_REQUEST,
        )
    )
    ids = {e.message_id for e in expected if isinstance(e, ChatMessage)}
    dead = {p for p, e in zip(placed, expected, strict=True) if isinstance(e, DeadLetter)}
    out = live.run(live.reader.until(ids, dead, timeout_s=120, alive=live.worker.assert_alive))
    got = {(o.value["source"]["partition"], o.value["source"]["offset"]): o for o in out.dead}
    for where, rec, exp in zip(placed, batch, expected, strict=True):
        if isinstance(exp, DeadLetter):
            letter = DeadLetter.model_validate(got[where].value)
            assert letter.reason == exp.reason, (
                rec.value[:200] if rec.value else None,
                letter.error,
            )
            assert letter.source.key == exp.source.key
        else:
            assert where not in got, f"a valid message was dead-lettered: {got[where].value}"
    live.worker.assert_alive()
    assert live.worker.status("/healthz") == 200


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(batch=records)
@example(batch=[Rec(huge("10MB value"), b"\xff\xfe"), Rec(huge("1M-char text"), None)])
@example(batch=[Rec(b'{"message_id": "p-surrogate1", "text": "\\ud800 lone"}', b"k")])
def test_poison_records_end_as_scores_or_dead_letters(live: Live, batch: list[Rec]) -> None:
    check_batch(live, batch)


def test_the_worker_survived_all_of_it(live: Live) -> None:
    """Runs after the hypothesis test (file order): still alive, healthy and ready."""
    live.worker.assert_alive()
    assert live.worker.status("/healthz") == 200
    assert live.worker.status("/readyz") == 200
    assert "stage_crashed" not in live.worker.log_text()


def chart_memory_limit() -> int:
    """The worker container's memory limit in the Helm chart (2 GiB if it cannot be read)."""
    import yaml
    from integration_helpers import REPO

    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    try:
        values = yaml.safe_load((REPO / "helm" / "modstream" / "values.yaml").read_text())
        limit = str(values["resources"]["limits"]["memory"])
        return int(float(limit[:-2]) * units[limit[-2:]])
    except (OSError, KeyError, TypeError, ValueError):
        return 2 << 30


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


@pytest.mark.slow
def test_texts_at_the_length_limit_fit_the_chart_memory_limit(live: Live) -> None:
    """Texts just under max_text_chars are scored over windows without outgrowing the pod."""
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dogs",
        "while",
        "gamers",
        "shout",
        "gg",
        "ez",
        "noob",
    ]
    recs = []
    for i in range(8):
        text = " ".join(words[(i + j) % len(words)] for j in range(LIMITS.max_text_chars // 4))
        text = text[: LIMITS.max_text_chars - 10]
        mid = f"p-long-{i}-{uuid.uuid4().hex[:6]}"
        recs.append(
            Rec(json.dumps({"message_id": mid, "text": text}).encode(), b"k", message_id=mid)
        )
    live.run(produce(live.broker.bootstrap_servers, live.topics.input, recs))
    ids = {r.message_id for r in recs if r.message_id}
    live.run(live.reader.until(ids, timeout_s=600, alive=live.worker.assert_alive))
    peak, limit = peak_rss(live.worker.pid), chart_memory_limit()
    print(
        f"\npeak RSS {peak >> 20} MiB after 8 texts of {LIMITS.max_text_chars} chars; "
        f"chart limit {limit >> 20} MiB"
    )
    assert peak < limit * 0.9, f"peak RSS {peak >> 20} MiB is within 10% of the pod limit"
