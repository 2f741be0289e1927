"""Offset tracking: done only moves forward; pending is done minus committed."""

from __future__ import annotations

from aiokafka import TopicPartition

from stream.offsets import OffsetTracker

A = TopicPartition("chat.messages", 0)
B = TopicPartition("chat.messages", 1)


def test_nothing_pending_at_start() -> None:
    tracker = OffsetTracker()
    assert tracker.pending() == {}
    assert tracker.last_committed() == {}


def test_mark_done_is_monotone() -> None:
    tracker = OffsetTracker()
    tracker.mark_done({A: 10, B: 3})
    tracker.mark_done({A: 7})  # an older batch acked late must not move A back
    assert tracker.pending() == {A: 10, B: 3}
    tracker.mark_done({A: 12})
    assert tracker.pending() == {A: 12, B: 3}


def test_offset_zero_counts() -> None:
    tracker = OffsetTracker()
    tracker.mark_done({A: 0})
    assert tracker.pending() == {A: 0}


def test_committed_removes_from_pending() -> None:
    tracker = OffsetTracker()
    tracker.mark_done({A: 10, B: 3})
    tracker.committed({A: 10})
    assert tracker.pending() == {B: 3}
    tracker.mark_done({A: 15})
    assert tracker.pending() == {A: 15, B: 3}
    tracker.committed({A: 15, B: 3})
    assert tracker.pending() == {}
    assert tracker.last_committed() == {A: 15, B: 3}


def test_committed_is_monotone_too() -> None:
    tracker = OffsetTracker()
    tracker.committed({A: 10})
    tracker.committed({A: 4})
    assert tracker.last_committed() == {A: 10}
    tracker.mark_done({A: 8})
    assert tracker.pending() == {}


def test_forget_drops_revoked_partitions() -> None:
    tracker = OffsetTracker()
    tracker.mark_done({A: 10, B: 3})
    tracker.committed({A: 5, B: 3})
    tracker.forget([A])
    assert tracker.pending() == {}
    assert tracker.last_committed() == {B: 3}
    # Re-assigned later: starts from nothing, the broker's committed offset is the truth.
    tracker.mark_done({A: 2})
    assert tracker.pending() == {A: 2}
    tracker.forget([TopicPartition("other", 0)])  # unknown partitions are fine


def test_last_committed_is_a_copy() -> None:
    tracker = OffsetTracker()
    tracker.committed({A: 1})
    tracker.last_committed()[A] = 99
    assert tracker.last_committed() == {A: 1}
