"""Fixtures for the deployment tests: the chart, rendered through Helm's own Go SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from deploy_helpers import CHART_DIR, NAMESPACE, RELEASE, Manifests


@pytest.fixture(scope="session")
def helm() -> Any:
    """The helm_python module (Helm v4's Go SDK through ctypes)."""
    return pytest.importorskip("helm_python", reason="helm-python-sdk is a dev dependency")


@pytest.fixture(scope="session")
def chart(helm: Any) -> Iterator[Any]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render_raw(chart: Any) -> Callable[..., dict[str, str]]:
    """Template path -> rendered text, as `helm template` would print it."""

    def _render(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> dict[str, str]:
        rendered: dict[str, str] = chart.render(values=values or {}, name=name, namespace=NAMESPACE)
        return rendered

    return _render


@pytest.fixture(scope="session")
def render(render_raw: Callable[..., dict[str, str]]) -> Callable[..., Manifests]:
    """(kind, name) -> parsed object for every manifest the values produce."""

    def _render(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> Manifests:
        objects: Manifests = {}
        for path, text in render_raw(values, name=name).items():
            if path.endswith("NOTES.txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if not doc:
                    continue
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in objects, f"{key} rendered twice (second time in {path})"
                objects[key] = doc
        return objects

    return _render
