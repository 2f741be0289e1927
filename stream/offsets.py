"""Which input offsets may be committed: only those whose every output was acknowledged.

Batches are acknowledged in the order they were fetched (the ack stage is a
FIFO), so for each partition the "done" offset only moves forward and
everything below it has been produced. Committing ``done`` is therefore
at-least-once: a crash can repeat work, never skip it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka import TopicPartition


class OffsetTracker:
    def __init__(self) -> None:
        self._done: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def mark_done(self, next_offsets: Mapping[TopicPartition, int]) -> None:
        """Record that every record below ``next_offsets[tp]`` has its outputs acked."""
        for tp, offset in next_offsets.items():
            if offset > self._done.get(tp, -1):
                self._done[tp] = offset

    def pending(self) -> dict[TopicPartition, int]:
        """Offsets done but not yet committed: what the next commit should send."""
        return {tp: o for tp, o in self._done.items() if o > self._committed.get(tp, -1)}

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if offset > self._committed.get(tp, -1):
                self._committed[tp] = offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop partitions this worker no longer owns (after a rebalance)."""
        for tp in partitions:
            self._done.pop(tp, None)
            self._committed.pop(tp, None)

    def last_committed(self) -> dict[TopicPartition, int]:
        return dict(self._committed)
