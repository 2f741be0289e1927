"""Decoding: every kind of bad record becomes a dead letter with its reason; nothing raises."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.decode import MAX_JSON_DEPTH, Decoder, RecordRef, dead_letter
from stream.schemas import ChatMessage, DeadLetter

MAX_BYTES = 4096
MAX_CHARS = 100
REF = RecordRef("chat.messages", 3, 42, b"conv-1", 1_700_000_000_000)


@pytest.fixture
def decoder() -> Decoder:
    return Decoder(MAX_BYTES, MAX_CHARS)


def dead(decoder: Decoder, raw: bytes | None, ref: RecordRef = REF) -> DeadLetter:
    out = decoder.decode(raw, ref)
    assert isinstance(out, DeadLetter), out
    return out


def test_valid_message(decoder: Decoder) -> None:
    out = decoder.decode(b'{"message_id": "m1", "text": "hello", "extra": [1]}', REF)
    assert isinstance(out, ChatMessage)
    assert (out.message_id, out.text) == ("m1", "hello")


def test_text_at_the_character_limit_is_accepted(decoder: Decoder) -> None:
    raw = orjson.dumps({"message_id": "m", "text": "é" * MAX_CHARS})  # 2 bytes a char
    assert isinstance(decoder.decode(raw, REF), ChatMessage)


@pytest.mark.parametrize(
    ("raw", "reason", "error_part"),
    [
        (None, "schema", "tombstone"),
        (b"\xff\xfe{}", "invalid_utf8", "byte 0"),
        (b'{"message_id": "m", "text": "caf\xe9"}', "invalid_utf8", "not UTF-8"),
        (b"{", "invalid_json", "not JSON"),
        (b"", "invalid_json", "not JSON"),
        (b"hello", "invalid_json", "not JSON"),
        (b'{"message_id": "m", "text": "a"} trailing', "invalid_json", "not JSON"),
        (b"[]", "schema", "list"),
        (b'[{"message_id": "m", "text": "a"}]', "schema", "list"),
        (b"null", "schema", "not an object"),
        (b'"text"', "schema", "not an object"),
        (b"42", "schema", "not an object"),
        (b'{"text": "a"}', "schema", "message_id"),
        (b'{"message_id": "m"}', "schema", "text"),
        (b'{"message_id": "m", "text": 5}', "schema", "text"),
        (b'{"message_id": "m", "text": null}', "schema", "text"),
        (b'{"message_id": 1, "text": "a"}', "schema", "message_id"),
        (b'{"message_id": "m", "text": "a", "metadata": []}', "schema", "metadata"),
        (b'{"message_id": "m", "text": ""}', "empty_text", "empty"),
        (b'{"message_id": "m", "text": " \\n\\t "}', "empty_text", "whitespace"),
        (b'{"message_id": "m", "text": "a\\ud800b"}', "invalid_utf8", "surrogate"),
        (b'{"message_id": "m", "text": "\\udc00"}', "invalid_utf8", "surrogate"),
    ],
)
def test_dead_letter_reasons(
    decoder: Decoder, raw: bytes | None, reason: str, error_part: str
) -> None:
    letter = dead(decoder, raw)
    assert letter.reason == reason
    assert error_part in letter.error
    assert letter.source.topic == "chat.messages"
    assert (letter.source.partition, letter.source.offset) == (3, 42)
    assert letter.source.key == "conv-1"
    assert base64.b64decode(letter.raw_b64) == (raw or b"")


def test_deeply_nested_metadata_is_a_schema_error(decoder: Decoder) -> None:
    depth = MAX_JSON_DEPTH + 10
    nested = b"[" * depth + b"]" * depth
    raw = b'{"message_id": "m", "text": "a", "metadata": {"x": ' + nested + b"}}"
    letter = dead(decoder, raw)
    assert letter.reason == "schema"
    assert "nested" in letter.error


def test_nesting_below_the_limit_is_fine(decoder: Decoder) -> None:
    depth = MAX_JSON_DEPTH - 5
    raw = b'{"message_id": "m", "text": "a", "metadata": {"x": ' + b"[" * depth + b"]" * depth
    assert isinstance(decoder.decode(raw + b"}}", REF), ChatMessage)


def test_nesting_beyond_the_json_parser_limit_is_dead_not_a_crash(decoder: Decoder) -> None:
    raw = b'{"metadata": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert dead(Decoder(1 << 20, 10), raw).reason in ("invalid_json", "schema")


def test_too_many_bytes_keeps_only_a_prefix(decoder: Decoder) -> None:
    raw = orjson.dumps({"message_id": "m", "text": "x" * (MAX_BYTES * 2)})
    letter = dead(decoder, raw)
    assert letter.reason == "too_large"
    assert str(len(raw)) in letter.error
    assert "max_message_bytes" in letter.error
    assert base64.b64decode(letter.raw_b64) == raw[:1024]


def test_too_many_characters(decoder: Decoder) -> None:
    raw = orjson.dumps({"message_id": "m", "text": "y" * (MAX_CHARS + 1)})
    letter = dead(decoder, raw)
    assert letter.reason == "too_large"
    assert "max_text_chars" in letter.error


def test_bytes_limit_is_checked_before_parsing() -> None:
    # Garbage over the limit is too_large, not invalid_json: the cheap check comes first.
    assert dead(Decoder(64, 10), b"\xff" * 65).reason == "too_large"


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (None, None),
        (b"conv-\xc3\xa9", "conv-é"),
        (b"\xff\x00\xfe", "b64:" + base64.b64encode(b"\xff\x00\xfe").decode()),
    ],
)
def test_dead_letter_key(decoder: Decoder, key: bytes | None, shown: str | None) -> None:
    ref = RecordRef("t", 0, 1, key, 0)
    letter = dead(decoder, b"{", ref)
    assert letter.source.key == shown
    if shown and shown.startswith("b64:"):
        assert base64.b64decode(shown[4:]) == key


def test_dead_letter_serialises_to_the_design_shape() -> None:
    letter = dead_letter(REF, b"\x00\x01raw", "invalid_json", "boom")
    doc = json.loads(letter.model_dump_json())
    assert doc["reason"] == "invalid_json"
    assert doc["error"] == "boom"
    assert doc["source"] == {
        "topic": "chat.messages",
        "partition": 3,
        "offset": 42,
        "key": "conv-1",
    }
    assert base64.b64decode(doc["raw_b64"]) == b"\x00\x01raw"
    assert doc["received_at"].endswith("Z")
    assert doc["schema_version"] == 1


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(raw=st.binary(max_size=300), key=st.none() | st.binary(max_size=16))
def test_any_bytes_decode_without_raising(raw: bytes, key: bytes | None) -> None:
    out = Decoder(256, 50).decode(raw, RecordRef("t", 0, 0, key, 0))
    assert isinstance(out, ChatMessage | DeadLetter)
    if isinstance(out, DeadLetter):
        kept = base64.b64decode(out.raw_b64)
        assert kept == (raw if out.reason != "too_large" else raw[:1024])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@FAST
@given(
    message=st.fixed_dictionaries(
        {},
        optional={
            "message_id": json_values | st.text(max_size=10),
            "text": json_values | st.text(max_size=80),
            "user_id": json_values,
            "metadata": json_values,
        },
    )
)
def test_any_json_object_decodes_without_raising(message: dict[str, object]) -> None:
    raw = json.dumps(message).encode()
    out = Decoder(1 << 16, 50).decode(raw, REF)
    assert isinstance(out, ChatMessage | DeadLetter)
    if isinstance(out, ChatMessage):
        assert out.text.strip()
        assert len(out.text) <= 50


@FAST
@given(
    text=st.text(st.characters(exclude_categories=[]), min_size=1, max_size=60).filter(str.strip)
)
def test_any_text_round_trips(text: str) -> None:
    raw = json.dumps({"message_id": "m", "text": text}).encode()  # \uXXXX escapes, surrogates too
    expected = json.loads(raw)["text"]  # the stdlib joins escaped pairs, keeps lone halves
    out = Decoder(1 << 16, 60).decode(raw, REF)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in expected):
        assert isinstance(out, DeadLetter)
        assert out.reason == "invalid_utf8"
    else:
        assert isinstance(out, ChatMessage)
        assert out.text == expected
