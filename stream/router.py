"""From a scored batch to output records: scores for every message, flags, dead letters.

Every well-formed input yields exactly one record on the scores topic; a
flagged one also yields a record on the flagged topic; a record that could
not be decoded (or scored) yields one dead letter. Outputs keep the input's
key, so per-conversation order holds downstream. Values are built as plain
dicts and serialised with orjson: on the hot path a pydantic object per
message costs more than the rest of the routing (tests validate the
output against the pydantic schemas instead).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from stream.decode import RecordRef, now_iso
from stream.kafka import OutRecord
from stream.policy import Policy
from stream.schemas import SCHEMA_VERSION, ChatMessage, DeadLetter
from stream.settings import KafkaSettings


@dataclass(slots=True)
class Entry:
    """One consumed record on its way through the pipeline."""

    ref: RecordRef
    message: ChatMessage | None
    dead: DeadLetter | None = None


@dataclass(slots=True)
class Routed:
    records: list[OutRecord]
    flagged: list[tuple[list[str], str]]  # (triggered categories, action) per flagged message


class Router:
    def __init__(
        self, kafka: KafkaSettings, policy: Policy, model_id: str, include_text: bool
    ) -> None:
        self.kafka = kafka
        self.policy = policy
        self.model_id = model_id
        self.include_text = include_text

    def route(self, entries: Sequence[Entry], scores: np.ndarray) -> Routed:
        """Outputs for ``entries``; ``scores`` has one row per entry with a message, in order."""
        records: list[OutRecord] = []
        flagged: list[tuple[list[str], str]] = []
        scored_at = now_iso()
        now_ms = time.time() * 1000.0
        decided = iter(self.policy.results(scores))
        for entry in entries:
            if entry.dead is not None:
                records.append(
                    OutRecord(
                        self.kafka.dlq_topic, entry.ref.key, entry.dead.model_dump_json().encode()
                    )
                )
                continue
            msg = entry.message
            if msg is None:  # an entry has a message or a dead letter
                continue
            triggered, result = next(decided)
            event = {
                "schema_version": SCHEMA_VERSION,
                "message_id": msg.message_id,
                "user_id": msg.user_id,
                "conversation_id": msg.conversation_id,
                "tenant_id": msg.tenant_id,
                **result,
                "model": self.model_id,
                "policy": self.policy.id,
                "sent_at": msg.sent_at,
                "scored_at": scored_at,
                "latency_ms": round(max(0.0, now_ms - entry.ref.timestamp_ms), 3),
            }
            records.append(OutRecord(self.kafka.scores_topic, entry.ref.key, orjson.dumps(event)))
            if triggered:
                action = self.policy.action(triggered) or "review"
                event["action"] = action
                event["triggered"] = triggered
                event["text"] = msg.text if self.include_text else None
                records.append(
                    OutRecord(self.kafka.flagged_topic, entry.ref.key, orjson.dumps(event))
                )
                flagged.append((triggered, action))
        return Routed(records, flagged)
