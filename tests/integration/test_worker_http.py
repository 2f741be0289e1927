"""The worker's HTTP surface, on a real running worker.

``/healthz``, ``/readyz``, ``/metrics`` (every series the dashboard and the
alerts query is exported) and ``POST /v1/moderations``: OpenAI-shaped
answers for a string and a list, JSON 4xx errors without stack traces,
a body size limit and a bearer token.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml
from integration_helpers import (
    REPO,
    HttpReply,
    OutputReader,
    Topics,
    Worker,
    chat_stream,
    module_worker,
    produce,
)

from stream.broker import EmbeddedBroker

TOKEN = "it-token-7f3a9c"
MAX_BYTES = 2048
MAX_INPUTS = 4
METRIC_RE = re.compile(r"\bmodstream_[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def served(
    broker: EmbeddedBroker, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Topics, Worker]]:
    with module_worker(
        broker.bootstrap_servers,
        model_dir,
        tmp_path_factory.mktemp("http"),
        "http",
        MODSTREAM_HTTP_AUTH_TOKEN=TOKEN,
        MODSTREAM_HTTP_MAX_REQUEST_BYTES=str(MAX_BYTES),
        MODSTREAM_HTTP_MAX_INPUTS=str(MAX_INPUTS),
    ) as (topics, worker):
        # Put some traffic through so the counters and histograms have samples.
        records = chat_stream(50, "http")

        async def flow() -> None:
            await produce(broker.bootstrap_servers, topics.input, records)
            async with OutputReader(broker.bootstrap_servers, topics) as reader:
                await reader.until({r.message_id for r in records if r.message_id}, timeout_s=120)

        asyncio.run(flow())
        yield topics, worker


@pytest.fixture
def worker(served: tuple[Topics, Worker]) -> Worker:
    return served[1]


def moderate(worker: Worker, body: bytes, token: str | None = TOKEN) -> HttpReply:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return worker.http("POST", "/v1/moderations", body, headers)


def assert_client_error(reply: HttpReply, status: int, kind: str) -> None:
    assert reply.status == status, reply.body[:300]
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    error = reply.json()["error"]
    assert error["type"] == kind
    assert isinstance(error["message"], str) and error["message"]
    text = reply.body.decode()
    for leak in ("Traceback", 'File "', "line ", "pydantic", "orjson", ".py"):
        assert leak not in text, f"{leak!r} in error body: {text}"


# -- probes --------------------------------------------------------------------------------


def test_healthz_is_200(worker: Worker) -> None:
    reply = worker.http("GET", "/healthz")
    assert reply.status == 200
    assert reply.json() == {"status": "ok"}


def test_readyz_is_200_while_flowing(worker: Worker) -> None:
    reply = worker.http("GET", "/readyz")
    assert reply.status == 200
    assert reply.json() == {"ready": True}


# -- metrics -------------------------------------------------------------------------------


def exposed_types(worker: Worker) -> dict[str, str]:
    reply = worker.http("GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    types = {}
    for line in reply.body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
    return types


def is_exposed(series: str, types: dict[str, str]) -> bool:
    if series in types:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix) and types.get(series.removesuffix(suffix)) == "histogram":
            return True
    return types.get(series) is not None


def test_metrics_are_all_modstream_and_have_samples(worker: Worker) -> None:
    types = exposed_types(worker)
    assert types and all(name.startswith("modstream_") for name in types)
    text = worker.http("GET", "/metrics").body.decode()
    for sample in (
        "modstream_messages_in_total{",
        "modstream_batch_size_count ",
        "modstream_ready 1.0",
    ):
        assert sample in text, f"{sample!r} missing from /metrics"


def dashboard_and_alert_series() -> set[str]:
    """Every modstream_* series the Grafana dashboard and the Prometheus rules query."""
    names: set[str] = set()
    dashboard = REPO / "deploy" / "grafana" / "modstream-dashboard.json"
    alerts = REPO / "deploy" / "prometheus" / "alerts.yaml"
    if dashboard.is_file():
        names |= set(METRIC_RE.findall(json.dumps(json.loads(dashboard.read_text()))))
    if alerts.is_file():
        names |= set(METRIC_RE.findall(json.dumps(yaml.safe_load(alerts.read_text()))))
    return names


def deploy_contract_families() -> dict[str, str]:
    """``EXPORTED_FAMILIES`` of tests/deploy (the metrics contract), read from its source."""
    path = REPO / "tests" / "deploy" / "test_deploy_observability.py"
    if not path.is_file():
        return {}
    return dict(re.findall(r'"(modstream_[a-z0-9_]+)": \("([a-z]+)"', path.read_text()))


def test_every_series_the_dashboard_and_alerts_use_is_exposed(worker: Worker) -> None:
    used = dashboard_and_alert_series()
    if not used:
        pytest.skip("no deploy/ dashboard or alert rules in this checkout")
    types = exposed_types(worker)
    missing = sorted(s for s in used if not is_exposed(s, types))
    assert not missing, f"queried by deploy/ but not on a running worker's /metrics: {missing}"


def test_the_deploy_metrics_contract_matches_a_running_worker(worker: Worker) -> None:
    contract = deploy_contract_families()
    if not contract:
        pytest.skip("tests/deploy has no metrics contract in this checkout")
    types = exposed_types(worker)
    exposed = {
        name.removesuffix("_total") if kind == "counter" else name: kind
        for name, kind in types.items()
        if not name.endswith("_created")
    }
    assert exposed == contract


# -- /v1/moderations -----------------------------------------------------------------------


def check_result(result: dict, categories: list[str]) -> None:
    assert set(result) == {"flagged", "categories", "category_scores"}
    assert list(result["categories"]) == categories
    assert list(result["category_scores"]) == categories
    assert all(isinstance(v, bool) for v in result["categories"].values())
    assert all(0.0 <= v <= 1.0 for v in result["category_scores"].values())
    assert result["flagged"] == any(result["categories"].values())


def model_categories(model_dir: Path) -> list[str]:
    return list(json.loads((model_dir / "model_card.json").read_text())["categories"])


def test_moderations_answers_a_string_like_openai(worker: Worker, model_dir: Path) -> None:
    reply = moderate(worker, orjson.dumps({"input": "you played well, gg"}))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["id"].startswith("modr-")
    assert isinstance(body["model"], str) and "@" in body["model"]
    assert len(body["results"]) == 1
    check_result(body["results"][0], model_categories(model_dir))


def test_moderations_answers_a_list_in_order(worker: Worker, model_dir: Path) -> None:
    texts = ["hello there", "i will find you and hurt you", "nice shot"]
    reply = moderate(worker, orjson.dumps({"input": texts, "model": "omni-moderation-latest"}))
    assert reply.status == 200, reply.body
    results = reply.json()["results"]
    assert len(results) == len(texts)
    for r in results:
        check_result(r, model_categories(model_dir))
    single = moderate(worker, orjson.dumps({"input": texts[1]})).json()["results"][0]
    assert single["category_scores"] == pytest.approx(results[1]["category_scores"], abs=1e-5)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"not json",
        b"",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'"just a string"',
        b"{}",
        b'{"text": "wrong field"}',
        b'{"input": 5}',
        b'{"input": null}',
        b'{"input": {"text": "an object"}}',
        b'{"input": [1, 2]}',
        b'{"input": ["ok", null]}',
        b'{"input": []}',
        b'{"input": ["a", "b", "c", "d", "e"]}',  # over MAX_INPUTS
    ],
    ids=lambda b: b[:24].decode("latin-1"),
)
def test_bad_requests_get_a_json_400_without_a_traceback(worker: Worker, body: bytes) -> None:
    assert_client_error(moderate(worker, body), 400, "invalid_request_error")


def test_a_body_over_the_limit_gets_413(worker: Worker) -> None:
    body = orjson.dumps({"input": "x" * (MAX_BYTES + 100)})
    assert_client_error(moderate(worker, body), 413, "invalid_request_error")


def test_a_chunked_body_over_the_limit_gets_413(worker: Worker) -> None:
    """No Content-Length to trust: the limit holds while reading."""
    conn = http.client.HTTPConnection("127.0.0.1", worker.http_port, timeout=10)
    chunks = [b'{"input": "'] + [b"y" * 512] * 8 + [b'"}']
    conn.request(
        "POST",
        "/v1/moderations",
        body=iter(chunks),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    reply = HttpReply(resp.status, dict(resp.headers), resp.read())
    conn.close()
    assert_client_error(reply, 413, "invalid_request_error")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"bearer {TOKEN}", TOKEN, f"Bearer {TOKEN}x"],
)
def test_without_the_right_bearer_token_401(worker: Worker, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    reply = worker.http("POST", "/v1/moderations", orjson.dumps({"input": "hi"}), headers)
    assert_client_error(reply, 401, "authentication_error")
    assert TOKEN not in reply.body.decode()


def test_the_token_is_checked_before_the_body_is_judged(worker: Worker) -> None:
    """An unauthenticated client learns nothing about the body rules (no 400/413 for it)."""
    assert moderate(worker, b"{", token=None).status == 401
    assert moderate(worker, b"x" * (MAX_BYTES * 2), token=None).status == 401


def test_probes_and_metrics_need_no_token(worker: Worker) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert worker.http("GET", path).status == 200
