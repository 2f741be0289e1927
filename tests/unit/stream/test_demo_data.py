"""The bundled demo traffic: enough of it, every category, the right dead letters, reproducible.

``stream/demo_data/chat.jsonl`` is bytes, one Kafka record value per line
(malformed values may be invalid UTF-8), so these tests read it as bytes and
parse each line on its own, the way the replay and the worker do.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO_DIR = ROOT / "stream" / "demo_data"
GENERATOR = DEMO_DIR / "make_demo_traffic.py"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo_traffic", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
# From classifiers.taxonomy, through the generator (which finds the checkout if not installed).
CATEGORIES: tuple[str, ...] = gen.CATEGORIES
PARENTS: dict[str, str] = gen.PARENTS


def _values() -> list[bytes]:
    data = (DEMO_DIR / "chat.jsonl").read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def _message(value: bytes) -> dict[str, Any] | None:
    """A well-formed chat message, or None: written independently of the generator."""
    try:
        data = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if not isinstance(data.get("message_id"), str) or not data["message_id"]:
        return None
    if not isinstance(data.get("text"), str) or not data["text"].strip():
        return None
    try:
        data["text"].encode("utf-8")
    except UnicodeEncodeError:
        return None
    return data


@pytest.fixture(scope="module")
def messages() -> list[dict[str, Any]]:
    return [m for m in map(_message, _values()) if m is not None]


@pytest.fixture(scope="module")
def labels() -> list[dict[str, Any]]:
    text = (DEMO_DIR / "chat.labels.jsonl").read_text(encoding="ascii")
    return [json.loads(line) for line in text.splitlines()]


def test_has_enough_records_and_fits_in_the_wheel() -> None:
    assert len(_values()) >= 2_000
    assert (DEMO_DIR / "chat.jsonl").stat().st_size < 1_000_000


def test_well_formed_records_have_unique_ids_and_increasing_time(
    messages: list[dict[str, Any]],
) -> None:
    ids = [m["message_id"] for m in messages]
    assert len(ids) == len(set(ids))
    stamps = [m["sent_at"][:19] for m in messages if "sent_at" in m]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_malformed_count_matches_the_generator() -> None:
    bad = [v for v in _values() if _message(v) is None]
    assert len(bad) == len(gen.MALFORMED) >= 25
    assert all(b"\n" not in v and b"\r" not in v for v in bad)
    # The invalid UTF-8 lines are why the file is bytes: make sure they survived.
    # (A JSON "\ud83d" escape is valid UTF-8 bytes, though its reason is invalid_utf8.)
    assert (
        sum(1 for v in bad if not _is_utf8(v))
        == sum(1 for _, _, raw in gen.MALFORMED if not _is_utf8(raw))
        >= 4
    )


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_labels_follow_records_and_cover_every_category(
    messages: list[dict[str, Any]], labels: list[dict[str, Any]]
) -> None:
    assert [row["message_id"] for row in labels] == [m["message_id"] for m in messages]
    for row in labels:
        assert tuple(row["categories"]) == CATEGORIES
        for child, parent in PARENTS.items():
            assert not row["categories"][child] or row["categories"][parent], row
    positives = Counter(c for row in labels for c, on in row["categories"].items() if on)
    assert all(positives[c] >= 20 for c in CATEGORIES), positives
    harmful = sum(1 for row in labels if any(row["categories"].values()))
    assert 0.10 <= harmful / len(labels) <= 0.20


def test_regeneration_is_byte_identical() -> None:
    chat, labels = gen.render(gen.generate())
    assert chat == (DEMO_DIR / "chat.jsonl").read_bytes()
    assert labels == (DEMO_DIR / "chat.labels.jsonl").read_bytes()
    assert gen.validate(chat, labels) == []
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    assert gen.readme_with_stats(readme, gen.stats(gen.generate(), chat)) == readme


def test_regeneration_ignores_the_hash_seed(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONHASHSEED="4242")
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        cwd=ROOT,
    )
    for name in ("chat.jsonl", "chat.labels.jsonl"):
        assert (tmp_path / name).read_bytes() == (DEMO_DIR / name).read_bytes(), name


def test_worker_decoder_routes_every_line_as_intended() -> None:
    pytest.importorskip("orjson")
    decode = pytest.importorskip("stream.decode")
    schemas = pytest.importorskip("stream.schemas")
    decoder = decode.Decoder(1_048_576, 100_000)
    reasons: list[str] = []
    for offset, value in enumerate(_values()):
        ref = decode.RecordRef("chat.messages", 0, offset, None, 0)
        out = decoder.decode(value, ref)
        if _message(value) is None:
            assert isinstance(out, schemas.DeadLetter), value
            reasons.append(out.reason)
        else:
            assert isinstance(out, schemas.ChatMessage), (value, out)
    assert Counter(reasons) == Counter(reason for _, reason, _ in gen.MALFORMED)


def test_no_demo_text_is_a_training_example(messages: list[dict[str, Any]]) -> None:
    """Demo agreement means nothing if the model was trained on the demo's sentences."""
    written = sorted((ROOT / "classifiers" / "data" / "written").glob("*.jsonl"))
    if not written:
        pytest.skip("team-written training examples not generated")
    training = set()
    for path in written:
        for line in path.read_text(encoding="utf-8").splitlines():
            text = json.loads(line).get("text")
            if isinstance(text, str) and len(text) >= 30:
                training.add(" ".join(text.lower().split()))
    demo = {" ".join(m["text"].lower().split()) for m in messages if len(m["text"]) >= 30}
    assert not demo & training
