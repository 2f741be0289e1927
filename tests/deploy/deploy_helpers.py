"""Shared helpers for the deployment tests (imported by conftest.py and the test modules).

`helm-python-sdk` binds libhelm_c (Helm v4's SDK behind a C ABI) with
ctypes, so rendering and linting here is what `helm template` and
`helm lint` do, with no helm binary and no cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "modstream"
VALUES_DIR = Path(__file__).resolve().parent / "values"
VALUES_FILES = sorted(p.stem for p in VALUES_DIR.glob("*.yaml"))
RELEASE = "modstream"
NAMESPACE = "moderation"

Manifests = dict[tuple[str, str], dict[str, Any]]


def load_values(name: str) -> dict[str, Any]:
    """A values file from tests/deploy/values by stem (``keda`` -> keda.yaml)."""
    values = yaml.safe_load((VALUES_DIR / f"{name}.yaml").read_text())
    return values or {}


def by_kind(objects: Manifests, kind: str) -> list[dict[str, Any]]:
    return [obj for (k, _), obj in objects.items() if k == kind]


def one(objects: Manifests, kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def worker_container(objects: Manifests) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "modstream")


def effective_env(objects: Manifests) -> dict[str, Any]:
    """What the worker process sees: the ConfigMap via envFrom, then `env` (which wins)."""
    container = worker_container(objects)
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        config_map = objects[("ConfigMap", source["configMapRef"]["name"])]
        env.update(config_map["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env
