"""Message schemas on the topics: what producers send and consumers read.

Versioned pydantic models; ``python -m stream.schemas DIR`` writes them as
JSON Schema files (``schemas/`` in the repository) so downstream teams can
validate without Python. Output models are shaped like OpenAI's moderation
result so existing clients read them unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

SCHEMA_VERSION = 1


class ChatMessage(BaseModel):
    """Input on ``chat.messages``; only ``message_id`` and ``text`` are required."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="ChatMessage.v1")

    message_id: StrictStr = Field(min_length=1, max_length=256)
    text: StrictStr
    user_id: StrictStr | None = None
    conversation_id: StrictStr | None = None
    tenant_id: StrictStr | None = None
    sent_at: StrictStr | None = None
    metadata: dict[str, Any] | None = None


class ScoreEvent(BaseModel):
    """One result per input message on ``moderation.scores``."""

    model_config = ConfigDict(title="ScoreEvent.v1")

    schema_version: Literal[1] = 1
    message_id: str
    user_id: str | None = None
    conversation_id: str | None = None
    tenant_id: str | None = None
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    model: str = Field(description="name@version of the model that scored the text")
    policy: str = Field(description="name@version of the policy that chose the flags")
    sent_at: str | None = None
    scored_at: str
    latency_ms: float | None = Field(None, description="sent_at (or receipt) to scoring, in ms")


class FlagEvent(ScoreEvent):
    """A flagged result on ``moderation.flagged``, with what to do about it."""

    model_config = ConfigDict(title="FlagEvent.v1")

    action: str = Field(description="the strictest action of the triggering categories")
    triggered: list[str] = Field(description="categories at or above their threshold")
    text: str | None = Field(None, description="the message text, unless disabled by config")


class DeadLetterSource(BaseModel):
    topic: str
    partition: int
    offset: int
    key: str | None = Field(None, description="the record key, base64 if it is not UTF-8")


class DeadLetter(BaseModel):
    """A record the worker could not score, on ``moderation.dlq``; ``raw_b64`` keeps it whole."""

    model_config = ConfigDict(title="DeadLetter.v1")

    schema_version: Literal[1] = 1
    error: str
    reason: Literal[
        "invalid_utf8", "invalid_json", "schema", "too_large", "empty_text", "inference_error"
    ]
    source: DeadLetterSource
    raw_b64: str
    received_at: str


class ModerationRequest(BaseModel):
    """``POST /v1/moderations`` body, as OpenAI's endpoint takes it."""

    model_config = ConfigDict(extra="ignore")

    input: StrictStr | list[StrictStr]
    model: str | None = None


EXPORTED: dict[str, type[BaseModel]] = {
    "chat-message.v1.json": ChatMessage,
    "score-event.v1.json": ScoreEvent,
    "flag-event.v1.json": FlagEvent,
    "dead-letter.v1.json": DeadLetter,
}


def json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text of every topic model."""
    return {
        name: json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in EXPORTED.items()
    }


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or ["schemas"])[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in json_schemas().items():
        (out / name).write_text(text)
    print(f"wrote {len(EXPORTED)} schemas to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
