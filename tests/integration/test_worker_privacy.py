"""Over a whole run at DEBUG level, no message text reaches the logs or /metrics.

Message text (and the raw bytes of malformed records) carries one canary
string; ids, keys and headers carry another. The text canary must appear in
neither the worker's log output nor its metrics; the id canary must not be
a metric label (ids may be logged: they are what an operator searches by).
Every log line must be one JSON object, so a log pipeline can parse it.
"""

from __future__ import annotations

import json
import uuid

import orjson
from integration_helpers import OutputReader, Rec, Topics, WorkerFactory, produce

from stream.broker import EmbeddedBroker

TEXT = f"txtcanary{uuid.uuid4().hex}"
IDS = f"idcanary{uuid.uuid4().hex}"


def canary_records() -> list[Rec]:
    recs = []
    for i in range(40):
        mid = f"{IDS}-{i}"
        body = {
            "message_id": mid,
            "text": f"you are all idiots {TEXT} number {i}",
            "user_id": f"{IDS}-user",
            "conversation_id": f"{IDS}-conv",
            "tenant_id": f"{IDS}-tenant",
            "metadata": {"note": TEXT},
        }
        recs.append(
            Rec(
                orjson.dumps(body),
                f"{IDS}-key".encode(),
                headers=(("trace", IDS.encode()),),
                message_id=mid,
            )
        )
    bad = [
        (b'{"message_id": "x", "text": "' + TEXT.encode() + b'"', "invalid_json"),
        (b'{"message_id": "x", "text": "' + TEXT.encode() + b'\xff"}', "invalid_utf8"),
        (orjson.dumps({"message_id": 7, "text": TEXT}), "schema"),
        (orjson.dumps({"message_id": "x", "text": TEXT * 20}), "too_large"),
        (b'{"message_id": "x", "text": "\\ud800 ' + TEXT.encode() + b'"}', "invalid_utf8"),
    ]
    for value, reason in bad:
        recs.append(Rec(value, f"{IDS}-key".encode(), reason=reason))
    return recs


async def test_no_text_in_logs_or_metrics_at_debug_level(
    broker: EmbeddedBroker, topics: Topics, workers: WorkerFactory
) -> None:
    worker = workers(MODSTREAM_LOG_LEVEL="DEBUG", MODSTREAM_MAX_TEXT_CHARS=str(len(TEXT) * 10))
    await worker.ready()
    records = canary_records()
    await produce(broker.bootstrap_servers, topics.input, records)
    async with OutputReader(broker.bootstrap_servers, topics) as reader:
        out = await reader.until(
            {r.message_id for r in records if r.message_id},
            dead=sum(1 for r in records if r.message_id is None),
            timeout_s=120,
            alive=worker.assert_alive,
        )
    assert len(out.dead) == 5
    # The HTTP endpoint sees text too: a good request and a rejected one.
    ok = worker.http("POST", "/v1/moderations", orjson.dumps({"input": [TEXT, f"a {TEXT}"]}))
    assert ok.status == 200
    bad = worker.http("POST", "/v1/moderations", b'{"input": "' + TEXT.encode())
    assert bad.status == 400
    metrics = worker.http("GET", "/metrics").body.decode()
    assert worker.terminate() == 0
    log = worker.log_text()

    assert "debug" in log.lower(), "the worker did not log at DEBUG: the test proves nothing"
    assert TEXT not in log, [line for line in log.splitlines() if TEXT in line][:3]
    assert TEXT not in metrics
    assert IDS not in metrics, [line for line in metrics.splitlines() if IDS in line][:3]
    not_json = []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            not_json.append(line[:200])
    assert not not_json, f"{len(not_json)} log lines are not JSON objects, e.g. {not_json[:3]}"
