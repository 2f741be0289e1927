"""Bytes from Kafka to a validated :class:`ChatMessage`, or a dead letter with a reason.

Decoding never raises: anything a producer can put in a record value ends
as either a message to score or a :class:`DeadLetter` that keeps the raw
bytes, so a poison record can neither crash a worker nor block a partition.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from stream.schemas import ChatMessage, DeadLetter, DeadLetterSource

# Deeper JSON than this is not a chat message; orjson itself stops at 1024.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where a record came from, enough to route its output and commit its offset."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "b64:" + base64.b64encode(key).decode("ascii")


def dead_letter(ref: RecordRef, raw: bytes | None, reason: str, error: str) -> DeadLetter:
    """A dead letter that carries the record whole, so it can be replayed after a fix."""
    return DeadLetter(
        error=error,
        reason=reason,
        source=DeadLetterSource(
            topic=ref.topic, partition=ref.partition, offset=ref.offset, key=_key_text(ref.key)
        ),
        raw_b64=base64.b64encode(raw or b"").decode("ascii"),
        received_at=now_iso(),
    )


def _too_deep(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False


class Decoder:
    """Turns record values into messages; limits come from settings.

    ``Decoder(1024, 100).decode(b'{"message_id": "m1", "text": "hi"}', ref)``
    returns a ``ChatMessage``; ``decode(b"{", ref)`` a ``DeadLetter`` with
    reason ``invalid_json``.
    """

    def __init__(self, max_message_bytes: int, max_text_chars: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_text_chars = max_text_chars

    def decode(self, raw: bytes | None, ref: RecordRef) -> ChatMessage | DeadLetter:
        if raw is None:
            return dead_letter(ref, raw, "schema", "record has no value (tombstone)")
        if len(raw) > self.max_message_bytes:
            return dead_letter(
                ref,
                raw[:1024],
                "too_large",
                f"value is {len(raw)} bytes, over max_message_bytes={self.max_message_bytes}"
                " (only the first 1024 bytes are kept)",
            )
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return dead_letter(ref, raw, "invalid_utf8", f"value is not UTF-8 at byte {exc.start}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # "\ud800" is valid JSON syntax but no UTF-8 text; orjson refuses it here.
            if "surrogate" in exc.msg:
                return dead_letter(
                    ref, raw, "invalid_utf8", f"value has a lone surrogate escape: {exc.msg}"
                )
            return dead_letter(ref, raw, "invalid_json", f"value is not JSON: {exc.msg}")
        if not isinstance(data, dict):
            return dead_letter(
                ref, raw, "schema", f"value is a JSON {type(data).__name__}, not an object"
            )
        # A value with fewer brackets than the limit cannot nest that deep:
        # two C-speed counts spare almost every message the walk.
        if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and _too_deep(data):
            return dead_letter(ref, raw, "schema", f"JSON nested deeper than {MAX_JSON_DEPTH}")
        try:
            message = ChatMessage.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "value"
            return dead_letter(ref, raw, "schema", f"{field}: {first['msg']}")
        text = message.text
        if len(text) > self.max_text_chars:
            return dead_letter(
                ref,
                raw[:1024],
                "too_large",
                f"text has {len(text)} characters, over max_text_chars={self.max_text_chars}",
            )
        if not text.strip():
            return dead_letter(ref, raw, "empty_text", "text is empty or whitespace")
        return message
