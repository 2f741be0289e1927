"""Wrappers keep the text, survive normalisation, and are drawn without the labels."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from classifiers.augment import WRAPPERS, wrap, wrap_some
from classifiers.normalize import normalize


@dataclass(frozen=True)
class Row:
    text: str
    label: int


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_each_wrapper_keeps_the_text_through_normalisation(kind: str) -> None:
    rng = random.Random(3)
    for _ in range(30):
        wrapped = WRAPPERS[kind]("you are such a loser", rng)
        assert wrapped != "you are such a loser"
        assert "you are such a loser" in normalize(wrapped)


def test_wrap_draws_every_kind() -> None:
    rng = random.Random(0)
    seen = {wrap("hello there", rng) for _ in range(200)}
    assert any(w.startswith("> ") for w in seen)
    assert any("https://" in w for w in seen)
    assert len(seen) > 50


def test_wrap_some_is_seeded_counted_and_label_blind() -> None:
    rows = [Row(f"line {i}", i % 3 == 0) for i in range(300)]
    once = wrap_some(rows, 0.15, seed=7)
    assert once == wrap_some(rows, 0.15, seed=7)
    assert once != wrap_some(rows, 0.15, seed=8)
    changed = [i for i, (a, b) in enumerate(zip(rows, once, strict=True)) if a != b]
    assert len(changed) == 45
    assert all(a.label == b.label for a, b in zip(rows, once, strict=True))
    # the same positions are chosen whatever the labels say
    flipped = [Row(r.text, not r.label) for r in rows]
    assert [
        i
        for i, (a, b) in enumerate(zip(flipped, wrap_some(flipped, 0.15, 7), strict=True))
        if a != b
    ] == changed


def test_wrap_some_with_nothing_to_wrap() -> None:
    assert wrap_some([], 0.5, 1) == []
    rows = [Row("a", 0)]
    assert wrap_some(rows, 0.0, 1) == rows
