"""deploy/: the dashboard, alert rules, KEDA example and compose stack.

Each file parses and has the parts operators look for, and every
``modstream_*`` series the dashboard and the rules query is one the worker
exports, with labels it carries: a renamed metric fails here, not as an
empty panel or an alert that can never fire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "modstream-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
COMPOSE = DEPLOY / "compose.yaml"

#: What the worker exports on /metrics (the metrics contract): family -> (type, labels).
#: Counters expose <name>_total, histograms <name>_bucket/_sum/_count.
EXPORTED_FAMILIES: dict[str, tuple[str, frozenset[str]]] = {
    "modstream_messages_in": ("counter", frozenset({"topic"})),
    "modstream_messages_out": ("counter", frozenset({"topic"})),
    "modstream_flags": ("counter", frozenset({"category", "action"})),
    "modstream_dlq": ("counter", frozenset({"reason"})),
    "modstream_batch_size": ("histogram", frozenset()),
    "modstream_inference_seconds": ("histogram", frozenset()),
    "modstream_end_to_end_latency_seconds": ("histogram", frozenset()),
    "modstream_queue_depth": ("gauge", frozenset({"queue"})),
    "modstream_consumer_lag": ("gauge", frozenset({"topic", "partition"})),
    "modstream_model_info": ("gauge", frozenset({"name", "version", "provider"})),
    "modstream_cache_hits": ("counter", frozenset()),
    "modstream_cache_misses": ("counter", frozenset()),
    "modstream_ready": ("gauge", frozenset()),
    "modstream_errors": ("counter", frozenset({"kind"})),
    "modstream_commits": ("counter", frozenset()),
    "modstream_batches": ("counter", frozenset()),
}
#: Labels Prometheus adds at scrape time (static config or ServiceMonitor).
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
)
METRIC_RE = re.compile(r"\bmodstream_[a-z0-9_]+\b")


def exported_series(families: dict[str, tuple[str, frozenset[str]]]) -> dict[str, frozenset[str]]:
    """Series name -> labels, expanded the way prometheus-client exposes each family."""
    series: dict[str, frozenset[str]] = {}
    for name, (kind, labels) in families.items():
        if kind == "counter":
            series[f"{name}_total"] = labels
        elif kind == "histogram":
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_sum"] = labels
            series[f"{name}_count"] = labels
        else:
            series[name] = labels
    return series


EXPORTED = exported_series(EXPORTED_FAMILIES)


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(panel title, expr, legendFormat) for every panel target, rows included."""
    dashboard = json.loads(DASHBOARD.read_text())

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield panel["title"], target["expr"], target.get("legendFormat", "")
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"${variable['name']}", variable["definition"], ""


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def all_queries() -> list[tuple[str, str, str]]:
    queries = list(dashboard_queries())
    queries += [(rule["alert"], rule["expr"], "") for rule in alert_rules()]
    return queries


def _grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_left/group_right clauses and matchers."""
    labels: set[str] = set()
    for clause in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr
    ):
        labels.update(label.strip() for label in clause.split(",") if label.strip())
    for matchers in re.findall(r"\{([^{}]*)\}", expr):
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    return labels


# ----------------------------------------------------------------- metric names


def test_the_contract_list_matches_the_worker_registry() -> None:
    """The constant above is what stream.metrics registers (when the package is importable)."""
    metrics = pytest.importorskip("stream.metrics")
    registered = metrics.Metrics()
    registered.watch_cache(lambda: (0, 0))
    families: dict[str, str] = {
        family.name: family.type for family in registered.registry.collect()
    }
    assert families == {name: kind for name, (kind, _) in EXPORTED_FAMILIES.items()}
    for collector_attr, family in [
        ("messages_in", "modstream_messages_in"),
        ("flags", "modstream_flags"),
        ("dlq", "modstream_dlq"),
        ("consumer_lag", "modstream_consumer_lag"),
        ("model_info", "modstream_model_info"),
        ("errors", "modstream_errors"),
        ("queue_depth", "modstream_queue_depth"),
    ]:
        labels = frozenset(getattr(registered, collector_attr)._labelnames)
        assert labels == EXPORTED_FAMILIES[family][1], family


@pytest.mark.parametrize(("where", "expr", "legend"), all_queries())
def test_every_queried_series_is_exported(where: str, expr: str, legend: str) -> None:
    names = set(METRIC_RE.findall(expr))
    unknown = names - set(EXPORTED)
    assert not unknown, f"{where}: queries series the worker does not export: {unknown}"


@pytest.mark.parametrize(("where", "expr", "legend"), all_queries())
def test_every_label_used_exists_on_the_queried_series(where: str, expr: str, legend: str) -> None:
    available = set(TARGET_LABELS)
    for name in METRIC_RE.findall(expr):
        available |= EXPORTED.get(name, frozenset())
    used = _grouping_labels(expr) | set(re.findall(r"\{\{\s*([a-zA-Z_]\w*)\s*\}\}", legend))
    assert used <= available, f"{where}: labels {used - available} are on none of its series"


@pytest.mark.parametrize(("where", "expr", "legend"), all_queries())
def test_queries_have_balanced_brackets(where: str, expr: str, legend: str) -> None:
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"{where}: unbalanced {char!r} in {expr}"
    assert not stack, f"{where}: unclosed {stack} in {expr}"


# ----------------------------------------------------------------- dashboard


def test_dashboard_covers_what_operators_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "modstream"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    text = "\n".join(expr for _, expr, _ in dashboard_queries())
    wanted = {
        "throughput": "rate(modstream_messages_in_total",
        "output rate": "rate(modstream_messages_out_total",
        "consumer lag": "modstream_consumer_lag",
        "e2e p50": "histogram_quantile(0.50, sum by (le) (rate(modstream_end_to_end_latency_seconds_bucket",
        "e2e p99": "histogram_quantile(0.99, sum by (le) (rate(modstream_end_to_end_latency_seconds_bucket",
        "batch size": "modstream_batch_size_",
        "flags per category": "sum by (category) (rate(modstream_flags_total",
        "dlq rate": "rate(modstream_dlq_total",
        "cache hit rate": "modstream_cache_hits_total",
        "inference latency": "modstream_inference_seconds_bucket",
        "model info": "modstream_model_info",
    }
    missing = [what for what, needle in wanted.items() if needle not in text]
    assert not missing, f"dashboard lacks panels for: {missing}"
    # Panels use the data-source variable, so the file imports into any Grafana.
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert all('job=~"$job"' in t["expr"] for t in panel["targets"]), panel["title"]


# ----------------------------------------------------------------- alerts


def test_alert_rules_cover_the_failure_modes() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for needed in (
        "ModstreamConsumerLagGrowing",
        "ModstreamNoProgress",
        "ModstreamDeadLetterRateHigh",
        "ModstreamErrorRateHigh",
        "ModstreamWorkerNotReady",
    ):
        assert needed in rules
    runbook = (REPO / "docs" / "operations.md").read_text().lower()
    for name, rule in rules.items():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert f"### {name.lower()}" in runbook, f"docs/operations.md has no runbook for {name}"
        assert anchor == name.lower()


# ----------------------------------------------------------------- KEDA example


def test_keda_example_scales_on_lag_within_the_partitions() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "keda" / "scaledobject.yaml").read_text()))
    scaled = next(d for d in documents if d["kind"] == "ScaledObject")
    auth = next(d for d in documents if d["kind"] == "TriggerAuthentication")
    spec = scaled["spec"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    for key in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
        assert isinstance(trigger["metadata"][key], str) and trigger["metadata"][key]
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] > 0


# ----------------------------------------------------------------- compose


def test_compose_brings_up_kafka_worker_prometheus_grafana() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"kafka", "worker", "prometheus", "grafana"} <= set(services)
    assert not any("zookeeper" in name for name in services), "KRaft, no ZooKeeper"

    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "CONTROLLER" in kafka["environment"]["KAFKA_CONTROLLER_LISTENER_NAMES"]

    worker = services["worker"]
    build_context = (COMPOSE.parent / worker["build"]["context"]).resolve()
    assert (build_context / worker["build"]["dockerfile"]).resolve() == REPO / "Dockerfile"
    assert worker["build"]["target"] == "cpu"
    assert worker["environment"]["MODSTREAM_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "8080:8080" in worker["ports"]

    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            host = volume.split(":")[0]
            assert (COMPOSE.parent / host).exists(), f"{name} mounts missing {host}"


def test_prometheus_scrapes_the_worker_and_loads_the_rules() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["prometheus"]["volumes"])
    config_host = next(host for host, inside in mounts.items() if inside.endswith("prometheus.yml"))
    config = yaml.safe_load((COMPOSE.parent / config_host).read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "modstream"  # what the rules and the dashboard select
    assert job["static_configs"][0]["targets"] == ["worker:8080"]
    (rule_file,) = config["rule_files"]
    assert Path(mounts["./prometheus/alerts.yaml"]) == Path(rule_file)
    assert all('job="modstream"' in rule["expr"] for rule in alert_rules())


def test_grafana_provisions_the_dashboard_and_datasource() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    provisioning = COMPOSE.parent / next(
        h for h, i in mounts.items() if i == "/etc/grafana/provisioning"
    )
    providers = yaml.safe_load((provisioning / "dashboards" / "modstream.yaml").read_text())
    dashboard_dir = providers["providers"][0]["options"]["path"]
    assert mounts["./grafana/modstream-dashboard.json"].startswith(dashboard_dir + "/")
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
