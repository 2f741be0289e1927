"""The Helm chart, rendered and linted by Helm's own SDK under every values file.

Checks what an SRE relies on: lint is clean, the schema turns bad values
away naming the field, and the rendered objects carry the probes, security
context, GPU resources, KEDA trigger and config checksum they should.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from deploy_helpers import (
    CHART_DIR,
    NAMESPACE,
    REPO,
    VALUES_FILES,
    by_kind,
    effective_env,
    load_values,
    one,
    worker_container,
)

from stream.settings import deep_merge

#: Settings the worker reads (the MODSTREAM_ prefix dropped), from the settings contract.
WORKER_SETTINGS = frozenset(
    {
        "BOOTSTRAP_SERVERS",
        "INPUT_TOPIC",
        "SCORES_TOPIC",
        "FLAGGED_TOPIC",
        "DLQ_TOPIC",
        "GROUP_ID",
        "SECURITY_PROTOCOL",
        "SASL_MECHANISM",
        "SASL_USERNAME",
        "SASL_PASSWORD",
        "SASL_PASSWORD_FILE",
        "SSL_CAFILE",
        "SSL_CERTFILE",
        "SSL_KEYFILE",
        "MAX_BATCH_SIZE",
        "MAX_BATCH_WAIT_MS",
        "MODEL_DIR",
        "MODEL_VARIANT",
        "PROVIDERS",
        "INTRA_OP_THREADS",
        "CACHE_SIZE",
        "MAX_MESSAGE_BYTES",
        "MAX_TEXT_CHARS",
        "HTTP_HOST",
        "HTTP_PORT",
        "HTTP_MAX_REQUEST_BYTES",
        "HTTP_AUTH_TOKEN",
        "HTTP_AUTH_TOKEN_FILE",
        "POLICY_FILE",
        "INCLUDE_TEXT_IN_FLAGGED",
        "LOG_LEVEL",
        "LOG_TEXT",
    }
)
HTTP_PORT = 8080


# ----------------------------------------------------------------- lint and schema


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_lint_is_clean(helm: Any, values_file: str) -> None:
    report = helm.lint(CHART_DIR, load_values(values_file), strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, problems
    assert not report["errors"], report["errors"]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_every_values_file_passes_the_schema_and_renders(
    chart: Any, render: Any, values_file: str
) -> None:
    values = load_values(values_file)
    chart.validate_schema(values)
    objects = render(values)
    assert one(objects, "Deployment")
    for (kind, name), obj in objects.items():
        assert obj["apiVersion"], kind
        assert len(name) <= 63, f"{kind} name {name!r} is not a DNS label"
        assert obj["metadata"].get("namespace", NAMESPACE) == NAMESPACE


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_core_objects_match_the_kubernetes_api(render: Any, values_file: str) -> None:
    """Strict OpenAPI validation (no unknown fields) against Kubernetes 1.30, when available."""
    validator = pytest.importorskip(
        "kubernetes_validate", reason="optional: pip install kubernetes-validate"
    )
    for (kind, name), obj in render(load_values(values_file)).items():
        if obj["apiVersion"].startswith(("keda.sh/", "monitoring.coreos.com/")):
            continue  # CRDs: their schemas are not in the Kubernetes API
        try:
            validator.validate(obj, "1.30.0", strict=True)
        except validator.ValidationError as exc:
            pytest.fail(f"{kind}/{name}: {exc.message}")


SCHEMA_REJECTS = [
    pytest.param({"replicaCount": -1}, "/replicaCount", id="negative-replicas"),
    pytest.param({"autoscaling": {"mode": "vpa"}}, "/autoscaling/mode", id="unknown-autoscaling"),
    pytest.param({"autoscaling": {"maxReplicas": 0}}, "/autoscaling/maxReplicas", id="max-zero"),
    pytest.param({"autoscaling": {"maxReplica": 4}}, "maxReplica", id="typo-in-key"),
    pytest.param({"kafka": {"partitions": 0}}, "/kafka/partitions", id="zero-partitions"),
    pytest.param({"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol", id="protocol"),
    pytest.param({"kafka": {"sasl": {"mechanism": "GSSAPI"}}}, "/kafka/sasl/mechanism", id="sasl"),
    pytest.param({"kafka": {"bootstrapServers": "kafka"}}, "/kafka/bootstrapServers", id="no-port"),
    pytest.param({"worker": {"modelVariant": "int4"}}, "/worker/modelVariant", id="variant"),
    pytest.param({"worker": {"maxBatchSize": 0}}, "/worker/maxBatchSize", id="batch-size"),
    pytest.param({"worker": {"providers": ["cuda"]}}, "/worker/providers", id="provider-name"),
    pytest.param({"gpu": {"count": 0}}, "/gpu/count", id="gpu-count"),
    pytest.param({"autoscaling": {"keda": {"lagThreshold": -5}}}, "lagThreshold", id="lag"),
    pytest.param(
        {"autoscaling": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": -1}}}},
        "stabilizationWindowSeconds",
        id="stabilisation",
    ),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="pull-policy"),
    pytest.param({"service": {"port": 70000}}, "/service/port", id="port"),
    pytest.param({"policy": {"actions": {"hate": "ban"}}}, "/policy/actions/hate", id="action"),
    pytest.param({"policy": {"thresholds": {"hate": 1.5}}}, "/policy/thresholds/hate", id="thr"),
]


@pytest.mark.parametrize(("values", "field"), SCHEMA_REJECTS)
def test_schema_rejects_bad_values_naming_the_field(
    helm: Any, chart: Any, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as excinfo:
        chart.validate_schema(values)
    assert field in str(excinfo.value)
    # An install hits the same wall before anything reaches the cluster.
    with pytest.raises(helm.HelmValuesError):
        chart.render(values=values, name="modstream", namespace=NAMESPACE)


CROSS_FIELD_REJECTS = [
    pytest.param(
        {"kafka": {"partitions": 6}, "autoscaling": {"mode": "keda", "maxReplicas": 12}},
        ["autoscaling.maxReplicas (12)", "kafka.partitions (6)"],
        id="keda-max-over-partitions",
    ),
    pytest.param(
        {"kafka": {"partitions": 4}, "autoscaling": {"mode": "hpa", "maxReplicas": 5}},
        ["autoscaling.maxReplicas (5)", "kafka.partitions (4)"],
        id="hpa-max-over-partitions",
    ),
    pytest.param(
        {"autoscaling": {"mode": "keda", "minReplicas": 6, "maxReplicas": 3}},
        ["autoscaling.minReplicas (6)"],
        id="min-over-max",
    ),
    pytest.param(
        {"autoscaling": {"mode": "hpa", "minReplicas": 0}},
        ["autoscaling.minReplicas", "keda"],
        id="hpa-to-zero",
    ),
    pytest.param(
        {"kafka": {"securityProtocol": "SASL_SSL", "sasl": {"username": "u"}}},
        ["kafka.sasl.existingSecret"],
        id="sasl-without-secret",
    ),
    pytest.param(
        {"kafka": {"securityProtocol": "SASL_PLAINTEXT", "sasl": {"existingSecret": "s"}}},
        ["kafka.sasl.username"],
        id="sasl-without-username",
    ),
    pytest.param(
        {"kafka": {"securityProtocol": "SSL", "tls": {"existingSecret": "t", "certKey": "c"}}},
        ["kafka.tls.certKey", "kafka.tls.keyKey"],
        id="cert-without-key",
    ),
    pytest.param(
        {"kafka": {"tls": {"existingSecret": "t"}}},
        ["kafka.tls.existingSecret", "PLAINTEXT"],
        id="tls-secret-on-plaintext",
    ),
]


@pytest.mark.parametrize(("values", "fragments"), CROSS_FIELD_REJECTS)
def test_cross_field_mistakes_fail_the_render_with_a_clear_message(
    helm: Any, chart: Any, values: dict[str, Any], fragments: list[str]
) -> None:
    chart.validate_schema(values)  # each field is fine on its own
    with pytest.raises(helm.HelmRenderError) as excinfo:
        chart.render(values=values, name="modstream", namespace=NAMESPACE)
    for fragment in fragments:
        assert fragment in str(excinfo.value)


def _schema_properties(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    for key, sub in node.get("properties", {}).items():
        found.append((f"{path}.{key}", sub))
        found.extend(_schema_properties(sub, f"{path}.{key}"))
    return found


def test_schema_describes_every_value_and_covers_values_yaml(chart: Any) -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    undocumented = [path for path, sub in _schema_properties(schema) if not sub.get("description")]
    assert not undocumented, f"schema properties without a description: {undocumented}"
    # The shipped defaults pass (additionalProperties: false catches stale keys).
    chart.validate_schema(chart.values)


def test_values_yaml_documents_its_settings() -> None:
    """helm-docs style: every top-level key carries a `# --` comment or groups documented keys."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    doc_comments = sum(1 for line in lines if line.lstrip().startswith("# -- "))
    assert doc_comments >= 60
    for i, line in enumerate(lines):
        match = re.match(r"^([A-Za-z][A-Za-z0-9]*):\s*(\S.*)?$", line)
        if match and match.group(2) is not None:  # a top-level leaf
            assert lines[i - 1].startswith("# -- "), f"values.yaml: {match.group(1)} lacks `# --`"


# ----------------------------------------------------------------- the workload


def test_deployment_probes_ports_and_grace_period(render: Any) -> None:
    objects = render(load_values("default"))
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container(objects)

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": HTTP_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"] == ["worker"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["resources"]["requests"] and container["resources"]["limits"]

    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_security_context_is_locked_down(render: Any, values_file: str) -> None:
    objects = render(load_values(values_file))
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = worker_container(objects)
    security = container["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    # A read-only root needs a writable /tmp.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["tmp"] == "/tmp"
    assert "emptyDir" in volumes["tmp"]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_worker_env_uses_only_known_settings(render: Any, values_file: str) -> None:
    env = effective_env(render(load_values(values_file)))
    ours = {k.removeprefix("MODSTREAM_") for k in env if k.startswith("MODSTREAM_")}
    assert ours <= WORKER_SETTINGS, ours - WORKER_SETTINGS
    assert env["MODSTREAM_HTTP_PORT"] == str(HTTP_PORT)
    assert env["MODSTREAM_HTTP_HOST"] == "0.0.0.0"


def test_worker_env_names_match_the_settings_module() -> None:
    """The chart's setting names exist in stream.settings (when the package is importable)."""
    settings = pytest.importorskip("stream.settings")
    names = {
        settings.env_name(field)
        for section in settings._SECTIONS.values()
        for field in section.model_fields
    }
    missing = {f"MODSTREAM_{name}" for name in WORKER_SETTINGS} - names
    assert not missing, f"the chart sets variables the worker does not read: {missing}"


def test_cpu_by_default(render: Any) -> None:
    objects = render(load_values("default"))
    container = worker_container(objects)
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert effective_env(objects)["MODSTREAM_PROVIDERS"] == "CPUExecutionProvider"
    assert container["image"] == "ghcr.io/modstream/modstream:0.1.0"


def test_gpu_values_request_a_gpu_and_the_cuda_provider(render: Any) -> None:
    values = load_values("gpu")
    objects = render(values)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = worker_container(objects)
    env = effective_env(objects)

    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["cpu"] == "4"
    assert env["MODSTREAM_PROVIDERS"] == "CUDAExecutionProvider,CPUExecutionProvider"
    assert env["MODSTREAM_MAX_BATCH_SIZE"] == "256"
    assert env["MODSTREAM_MODEL_VARIANT"] == "fp16"
    assert container["image"].endswith(":0.1.0-gpu")
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        "cloud.google.com/gke-accelerator": "nvidia-l4",
    }
    toleration_keys = {t["key"] for t in pod["tolerations"]}
    assert toleration_keys == {"nvidia.com/gpu", "dedicated"}


def test_explicit_image_tag_and_providers_win(render: Any) -> None:
    values = deep_merge(
        load_values("gpu"),
        {"image": {"tag": "1.2.3-cuda12"}, "worker": {"providers": ["TensorrtExecutionProvider"]}},
    )
    objects = render(values)
    assert worker_container(objects)["image"] == "ghcr.io/modstream/modstream:1.2.3-cuda12"
    assert effective_env(objects)["MODSTREAM_PROVIDERS"] == "TensorrtExecutionProvider"


def test_large_integers_are_not_rendered_in_float_notation(render: Any) -> None:
    env = effective_env(render({"worker": {"maxMessageBytes": 2_097_152, "cacheSize": 1_000_000}}))
    assert env["MODSTREAM_MAX_MESSAGE_BYTES"] == "2097152"
    assert env["MODSTREAM_CACHE_SIZE"] == "1000000"


def test_existing_secrets_are_referenced_never_created(render: Any) -> None:
    values = load_values("with-secrets")
    objects = render(values)
    assert not by_kind(objects, "Secret")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = worker_container(objects)
    env = {e["name"]: e for e in container["env"]}
    merged = effective_env(objects)

    assert env["MODSTREAM_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "modstream-kafka-user",
        "key": "password",
    }
    assert env["MODSTREAM_SASL_USERNAME"]["value"] == "modstream"
    assert env["MODSTREAM_HTTP_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "modstream-api",
        "key": "token",
    }
    assert merged["MODSTREAM_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert merged["MODSTREAM_SASL_MECHANISM"] == "SCRAM-SHA-512"

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    tls = volumes["kafka-tls"]["secret"]
    assert tls["secretName"] == "kafka-cluster-ca"
    assert {item["key"] for item in tls["items"]} == {"ca.crt", "tls.crt", "tls.key"}
    tls_dir = mounts["kafka-tls"]["mountPath"]
    assert mounts["kafka-tls"]["readOnly"] is True
    for setting, key in [("CAFILE", "ca.crt"), ("CERTFILE", "tls.crt"), ("KEYFILE", "tls.key")]:
        assert merged[f"MODSTREAM_SSL_{setting}"] == f"{tls_dir}/{key}"


def test_sasl_username_can_come_from_the_secret(render: Any) -> None:
    values = deep_merge(
        load_values("with-secrets"),
        {"kafka": {"sasl": {"username": "", "usernameKey": "user"}}},
    )
    objects = render(values)
    env = {e["name"]: e for e in worker_container(objects)["env"]}
    assert env["MODSTREAM_SASL_USERNAME"]["valueFrom"]["secretKeyRef"]["key"] == "user"
    auth = one(objects, "TriggerAuthentication")["spec"]
    assert "env" not in auth
    assert {"parameter": "username", "name": "modstream-kafka-user", "key": "user"} in auth[
        "secretTargetRef"
    ]


def test_policy_is_a_mounted_file(render: Any) -> None:
    values = load_values("with-secrets")
    objects = render(values)
    policy_map = objects[("ConfigMap", "modstream-policy")]
    assert yaml.safe_load(policy_map["data"]["policy.yaml"]) == values["policy"]
    container = worker_container(objects)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "policy")
    assert effective_env(objects)["MODSTREAM_POLICY_FILE"] == f"{mount['mountPath']}/policy.yaml"
    # No policy: no file, and the worker keeps its built-in default.
    default = render(load_values("default"))
    assert ("ConfigMap", "modstream-policy") not in default
    assert "MODSTREAM_POLICY_FILE" not in effective_env(default)


def _checksum(objects: dict[tuple[str, str], dict[str, Any]]) -> str:
    checksum: str = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"][
        "checksum/config"
    ]
    return checksum


def test_config_checksum_rolls_pods_only_when_config_changes(render: Any) -> None:
    base = _checksum(render({}))
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert _checksum(render({})) == base  # deterministic
    assert _checksum(render({"worker": {"maxBatchSize": 128}})) != base
    assert _checksum(render({"kafka": {"topics": {"input": "chat.v2"}}})) != base
    assert _checksum(render({"policy": {"actions": {"hate": "block"}}})) != base
    changed_policy = render({"policy": {"actions": {"hate": "warn"}}})
    assert _checksum(changed_policy) != _checksum(
        render({"policy": {"actions": {"hate": "block"}}})
    )
    # Changes that do not touch the worker's config leave the annotation alone.
    assert _checksum(render({"replicaCount": 5, "podLabels": {"team": "ts"}})) == base


# ----------------------------------------------------------------- autoscaling


def test_fixed_replicas_render_no_autoscaler(render: Any) -> None:
    objects = render(load_values("default"))
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    assert not by_kind(objects, "ScaledObject")


def test_keda_scales_on_consumer_group_lag(render: Any) -> None:
    values = load_values("keda")
    objects = render(values)
    deployment = one(objects, "Deployment")
    scaled = one(objects, "ScaledObject")
    spec = scaled["spec"]

    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert "replicas" not in deployment["spec"], "KEDA's HPA owns the replica count"
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert spec["minReplicaCount"] == 2
    assert spec["maxReplicaCount"] == 24 == values["kafka"]["partitions"]
    assert spec["pollingInterval"] == 10

    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["bootstrapServers"] == "kafka-0.kafka:9092,kafka-1.kafka:9092"
    assert metadata["consumerGroup"] == "moderation-workers"
    assert metadata["consumerGroup"] == effective_env(objects)["MODSTREAM_GROUP_ID"]
    assert metadata["topic"] == "chat.messages.v2"
    assert metadata["lagThreshold"] == "5000"
    assert metadata["activationLagThreshold"] == "10"
    assert metadata["allowIdleConsumers"] == "false"
    assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata is string-valued"
    assert "sasl" not in metadata and "tls" not in metadata
    assert "authenticationRef" not in trigger
    assert not by_kind(objects, "TriggerAuthentication")

    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 2, "periodSeconds": 120}]


def test_keda_never_exceeds_the_partition_count(helm: Any, chart: Any, render: Any) -> None:
    at_limit = render(
        {"kafka": {"partitions": 8}, "autoscaling": {"mode": "keda", "maxReplicas": 8}}
    )
    assert one(at_limit, "ScaledObject")["spec"]["maxReplicaCount"] == 8
    with pytest.raises(helm.HelmRenderError, match=r"maxReplicas \(9\) must not exceed"):
        chart.render(
            values={"kafka": {"partitions": 8}, "autoscaling": {"mode": "keda", "maxReplicas": 9}},
            name="modstream",
        )


def test_keda_authenticates_like_the_workers(render: Any) -> None:
    objects = render(load_values("with-secrets"))
    (trigger,) = one(objects, "ScaledObject")["spec"]["triggers"]
    auth = one(objects, "TriggerAuthentication")
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "password": ("modstream-kafka-user", "password"),
        "ca": ("kafka-cluster-ca", "ca.crt"),
        "cert": ("kafka-cluster-ca", "tls.crt"),
        "key": ("kafka-cluster-ca", "tls.key"),
    }
    # The username is read from the worker container's env, which must define it.
    (username,) = auth["spec"]["env"]
    container = worker_container(objects)
    assert username["containerName"] == container["name"]
    assert username["name"] in {e["name"] for e in container["env"]}


def test_keda_can_use_an_existing_trigger_authentication(render: Any) -> None:
    values = deep_merge(
        load_values("with-secrets"),
        {
            "autoscaling": {
                "keda": {
                    "authenticationRef": {
                        "name": "kafka-auth",
                        "kind": "ClusterTriggerAuthentication",
                    }
                }
            }
        },
    )
    objects = render(values)
    (trigger,) = one(objects, "ScaledObject")["spec"]["triggers"]
    assert trigger["authenticationRef"] == {
        "name": "kafka-auth",
        "kind": "ClusterTriggerAuthentication",
    }
    assert not by_kind(objects, "TriggerAuthentication")


def test_hpa_scales_on_cpu_and_a_custom_metric(render: Any) -> None:
    values = load_values("hpa")
    objects = render(values)
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert "replicas" not in one(objects, "Deployment")["spec"]
    assert not by_kind(objects, "ScaledObject")
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 8)
    cpu, lag = spec["metrics"]
    assert cpu["resource"]["name"] == "cpu"
    assert cpu["resource"]["target"] == {"type": "Utilization", "averageUtilization": 65}
    assert lag == values["autoscaling"]["hpa"]["customMetrics"][0]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_hpa_on_a_custom_metric_only(render: Any) -> None:
    values = deep_merge(
        load_values("hpa"), {"autoscaling": {"hpa": {"targetCPUUtilizationPercentage": None}}}
    )
    metrics = one(render(values), "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["External"]


def test_pod_disruption_budget_keeps_the_group_consuming(render: Any) -> None:
    objects = render(load_values("default"))
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert not by_kind(render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget")


# ----------------------------------------------------------------- monitoring and hooks


def test_monitoring_objects_only_when_enabled(render: Any) -> None:
    off = render(load_values("default"))
    assert not by_kind(off, "ServiceMonitor") and not by_kind(off, "PrometheusRule")

    objects = render(load_values("monitoring-on"))
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "http",
        "path": "/metrics",
        "interval": "15s",
        "scrapeTimeout": "10s",
    }
    assert monitor["spec"]["selector"]["matchLabels"] == one(objects, "Service")["spec"]["selector"]
    rule = one(objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_matches_the_standalone_alerts_file(render: Any) -> None:
    """The chart's rules and deploy/prometheus/alerts.yaml are the same at default thresholds."""
    objects = render({"metrics": {"prometheusRule": {"enabled": True}}}, name="modstream")
    standalone = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yaml").read_text())
    assert one(objects, "PrometheusRule")["spec"]["groups"] == standalone["groups"]


def test_prometheus_rule_follows_the_release_and_thresholds(render: Any) -> None:
    values = {
        "metrics": {
            "prometheusRule": {
                "enabled": True,
                "lagThreshold": 50000,
                "additionalAlertLabels": {"team": "trust-safety"},
            }
        }
    }
    rule = one(render(values, name="mod-eu"), "PrometheusRule")
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert 'job="mod-eu-modstream"' in rules["ModstreamNoProgress"]["expr"]
    assert "> 50000" in rules["ModstreamConsumerLagGrowing"]["expr"]
    assert all(r["labels"]["team"] == "trust-safety" for r in rules.values())


def test_helm_test_hook_calls_readyz(render: Any) -> None:
    objects = render(load_values("default"))
    pods = by_kind(objects, "Pod")
    (pod,) = pods
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    script = " ".join(container["command"])
    service = one(objects, "Service")
    assert f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{HTTP_PORT}/readyz" in script
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["restartPolicy"] == "Never"


def test_notes_warn_about_idle_workers(render_raw: Any) -> None:
    notes = render_raw({"replicaCount": 16})["modstream/templates/NOTES.txt"]
    assert "WARNING: replicaCount (16) exceeds kafka.partitions (12)" in notes
    notes = render_raw(load_values("keda"))["modstream/templates/NOTES.txt"]
    assert "KEDA on consumer-group lag, 2..24 workers" in notes
