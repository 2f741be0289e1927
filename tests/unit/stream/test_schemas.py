"""Topic schemas: the committed JSON Schema files, and what ChatMessage accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream import schemas
from stream.schemas import EXPORTED, ChatMessage, DeadLetter, FlagEvent, ScoreEvent, json_schemas


def test_committed_schema_files_are_up_to_date(repo_root: Path) -> None:
    committed = {p.name: p.read_text() for p in (repo_root / "schemas").glob("*.json")}
    assert committed == json_schemas(), (
        "schemas/ is stale: run `python -m stream.schemas schemas` and commit the result"
    )


def test_every_exported_schema_is_json_schema_with_a_versioned_title() -> None:
    for name, text in json_schemas().items():
        doc = json.loads(text)
        assert doc["type"] == "object"
        assert doc["title"].endswith(".v1"), name
        assert name.endswith(".v1.json")
    assert set(json_schemas()) == set(EXPORTED)


def test_required_fields_in_the_schemas() -> None:
    docs = {name: json.loads(text) for name, text in json_schemas().items()}
    assert sorted(docs["chat-message.v1.json"]["required"]) == ["message_id", "text"]
    score_required = set(docs["score-event.v1.json"]["required"])
    assert {"message_id", "flagged", "categories", "category_scores", "model"} <= score_required
    assert {"action", "triggered"} <= set(docs["flag-event.v1.json"]["required"])
    assert {"error", "reason", "source", "raw_b64"} <= set(docs["dead-letter.v1.json"]["required"])


def test_main_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schemas.main([str(tmp_path / "out")]) == 0
    written = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert written == json_schemas()
    assert "wrote 4 schemas" in capsys.readouterr().out


def test_chat_message_minimal_and_full() -> None:
    m = ChatMessage.model_validate({"message_id": "m1", "text": "hi"})
    assert (m.message_id, m.text, m.user_id, m.metadata) == ("m1", "hi", None, None)
    full = ChatMessage.model_validate(
        {
            "message_id": "m-123",
            "text": "...",
            "user_id": "u-9",
            "conversation_id": "c-4",
            "tenant_id": "t-1",
            "sent_at": "2026-11-28T10:00:00Z",
            "metadata": {"k": [1, 2]},
        }
    )
    assert full.conversation_id == "c-4"
    assert full.metadata == {"k": [1, 2]}


@pytest.mark.parametrize("missing", ["message_id", "text"])
def test_chat_message_requires_id_and_text(missing: str) -> None:
    data = {"message_id": "m1", "text": "hi"}
    del data[missing]
    with pytest.raises(ValidationError) as info:
        ChatMessage.model_validate(data)
    assert info.value.errors()[0]["loc"] == (missing,)


@pytest.mark.parametrize(
    "data",
    [
        {"message_id": "m1", "text": 5},
        {"message_id": "m1", "text": None},
        {"message_id": "m1", "text": ["a"]},
        {"message_id": 7, "text": "hi"},
        {"message_id": "", "text": "hi"},
        {"message_id": "m1", "text": "hi", "user_id": 3},
    ],
)
def test_chat_message_strict_strings(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ChatMessage.model_validate(data)


def test_chat_message_ignores_extra_fields() -> None:
    m = ChatMessage.model_validate({"message_id": "m1", "text": "hi", "lang": "en", "x": {}})
    assert "lang" not in m.model_dump()


def test_output_models_validate_the_design_example() -> None:
    example = {
        "message_id": "m-123",
        "user_id": "u-9",
        "conversation_id": "c-4",
        "tenant_id": "t-1",
        "flagged": True,
        "categories": {"harassment": True, "hate": False},
        "category_scores": {"harassment": 0.91, "hate": 0.03},
        "model": "modstream-minilm@1.0.0",
        "policy": "default@1",
        "sent_at": "2026-11-28T10:00:00Z",
        "scored_at": "2026-11-28T10:00:00.041Z",
        "latency_ms": 41.2,
    }
    assert ScoreEvent.model_validate(example).schema_version == 1
    flag = FlagEvent.model_validate({**example, "action": "warn", "triggered": ["harassment"]})
    assert flag.text is None
    with pytest.raises(ValidationError):
        DeadLetter.model_validate(
            {
                "error": "x",
                "reason": "not-a-reason",
                "source": {"topic": "t", "partition": 0, "offset": 1},
                "raw_b64": "",
                "received_at": "now",
            }
        )
