"""A worker that cannot start says why in one line and exits 2, before touching Kafka.

Bad settings, a missing or corrupt model directory, model file, tokenizer or
policy: each case runs the real ``python -m stream.cli worker`` and checks
the exit status, that stderr holds exactly one line, that the line names
the problem, and that no traceback or secret leaks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from integration_helpers import REPO, Topics, worker_env

SECRET = "s3cr3t-pa55w0rd-do-not-print"


def link_model(model_dir: Path, into: Path, *, replace: dict[str, bytes | None]) -> Path:
    """A copy of ``model_dir`` made of symlinks, with some files replaced (None: removed)."""
    into.mkdir()
    for item in model_dir.iterdir():
        if item.name in replace:
            content = replace[item.name]
            if content is not None:
                (into / item.name).write_bytes(content)
        else:
            (into / item.name).symlink_to(item.resolve())
    return into


def start_and_fail(env: dict[str, str]) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "stream.cli", "worker"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    return (
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def card_variant_file(model_dir: Path) -> str:
    """The ONNX file a CPU worker loads by default (int8 when the card lists it)."""
    import json

    variants = json.loads((model_dir / "model_card.json").read_text()).get("variants", {})
    return variants.get("int8") or variants.get("fp32") or "model.int8.onnx"


CONFIG_CASES = {
    "batch size zero": ({"MODSTREAM_MAX_BATCH_SIZE": "0"}, "MODSTREAM_MAX_BATCH_SIZE"),
    "not a number": ({"MODSTREAM_SESSION_TIMEOUT_MS": "soon"}, "MODSTREAM_SESSION_TIMEOUT_MS"),
    "unknown log level": ({"MODSTREAM_LOG_LEVEL": "LOUD"}, "MODSTREAM_LOG_LEVEL"),
    "port out of range": ({"MODSTREAM_HTTP_PORT": "70000"}, "MODSTREAM_HTTP_PORT"),
    "unknown protocol": ({"MODSTREAM_SECURITY_PROTOCOL": "TLS"}, "MODSTREAM_SECURITY_PROTOCOL"),
    "sasl without mechanism": (
        {
            "MODSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "MODSTREAM_SASL_USERNAME": "svc",
            "MODSTREAM_SASL_PASSWORD": SECRET,
        },
        "sasl_mechanism",
    ),
    "bad variant": ({"MODSTREAM_MODEL_VARIANT": "int4"}, "MODSTREAM_MODEL_VARIANT"),
    "missing policy file": ({"MODSTREAM_POLICY_FILE": "/nonexistent/policy.yaml"}, "policy.yaml"),
    "missing password file": (
        {
            "MODSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "MODSTREAM_SASL_MECHANISM": "SCRAM-SHA-512",
            "MODSTREAM_SASL_USERNAME": "svc",
            "MODSTREAM_SASL_PASSWORD_FILE": "/nonexistent/password",
        },
        "/nonexistent/password",
    ),
}


def check_one_line(code: int, out: str, err: str, needle: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}; stderr:\n{err[-2000:]}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err[-2000:]}"
    assert lines[0].startswith("modstream: error: "), lines[0]
    assert needle in lines[0], f"{needle!r} not named in: {lines[0]}"
    assert "Traceback" not in err + out
    assert SECRET not in err + out
    assert not out.strip(), f"stdout is not empty: {out[:500]}"


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_configuration_exits_2_with_one_line(case: str, model_dir: Path) -> None:
    overrides, needle = CONFIG_CASES[case]
    env = worker_env("127.0.0.1:1", Topics.unique("cfg"), model_dir, **overrides)
    check_one_line(*start_and_fail(env), needle)


def test_bad_yaml_config_file_exits_2(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "modstream.yaml"
    bad.write_text("batching: [unclosed\n")
    env = worker_env("127.0.0.1:1", Topics.unique("cfg"), model_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "stream.cli", "worker", "--config", str(bad)],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    check_one_line(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), "modstream.yaml")


def model_cases(model_dir: Path) -> dict[str, tuple[dict[str, bytes | None], str]]:
    onnx = card_variant_file(model_dir)
    return {
        "missing model card": ({"model_card.json": None}, "model_card.json"),
        "corrupt model card": ({"model_card.json": b"{not json"}, "model_card.json"),
        "card without categories": (
            {"model_card.json": b'{"name": "x", "version": "1"}'},
            "model_card.json",
        ),
        "corrupt onnx file": ({onnx: b"\x00this is not an onnx graph" * 64}, onnx),
        "empty onnx file": ({onnx: b""}, onnx),
        "missing onnx file": ({onnx: None}, onnx),
        "corrupt tokenizer": ({"tokenizer.json": b'{"version": "1.0", "truncated'}, "tokenizer"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing model card",
        "corrupt model card",
        "card without categories",
        "corrupt onnx file",
        "empty onnx file",
        "missing onnx file",
        "corrupt tokenizer",
    ],
)
def test_bad_model_exits_2_with_one_line(case: str, model_dir: Path, tmp_path: Path) -> None:
    replace, needle = model_cases(model_dir)[case]
    broken = link_model(model_dir, tmp_path / "model", replace=replace)
    env = worker_env("127.0.0.1:1", Topics.unique("model"), broken)
    check_one_line(*start_and_fail(env), needle)


def test_missing_model_directory_exits_2(model_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    env = worker_env("127.0.0.1:1", Topics.unique("model"), missing)
    check_one_line(*start_and_fail(env), str(missing))


def test_the_model_is_never_unpickled(model_dir: Path, tmp_path: Path) -> None:
    """A pickle dropped in the model directory is never opened (only ONNX and JSON are read)."""
    marker = tmp_path / "pickle-was-loaded"
    payload = (
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."  # os.system("touch ...")
    )
    replace: dict[str, bytes | None] = {
        name: payload for name in ("model.pkl", "pytorch_model.bin", "model.pt", "weights.pickle")
    }
    broken = link_model(model_dir, tmp_path / "model", replace=replace)
    env = worker_env("127.0.0.1:1", Topics.unique("model"), broken)
    code = subprocess.run(
        [sys.executable, "-m", "stream.cli", "classify", "a harmless sentence"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=120,
    ).returncode
    assert code == 0
    assert not marker.exists(), "a pickle in the model directory was executed"
    assert os.listdir(broken)  # the directory really held the bait
