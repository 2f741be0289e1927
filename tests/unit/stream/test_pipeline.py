"""score_with_split: a text that breaks the model goes to the DLQ alone, the rest is scored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from classifiers.api import TextClassifier
from stream.pipeline import score_with_split

CATEGORIES = ("hate", "violence")


class PoisonClassifier:
    """Scores a text by its length; any batch holding "POISON" fails in ``fail_in``."""

    name = "fake"
    version = "0"
    provider = "none"
    categories: tuple[str, ...] = CATEGORIES
    thresholds: Mapping[str, float] = dict.fromkeys(CATEGORIES, 0.5)

    def __init__(self, fail_in: str = "infer") -> None:
        self.fail_in = fail_in
        self.calls: list[tuple[str, int]] = []

    def _check(self, stage: str, texts: Sequence[str]) -> None:
        self.calls.append((stage, len(texts)))
        if stage == self.fail_in and any("POISON" in t for t in texts):
            raise RuntimeError("model exploded")

    def prepare(self, texts: Sequence[str]) -> list[str]:
        self._check("prepare", texts)
        return list(texts)

    def infer(self, prepared: list[str]) -> np.ndarray:
        self._check("infer", prepared)
        lengths = np.array([len(t) / 100 for t in prepared], np.float32)
        return np.stack([lengths, lengths / 2], axis=1)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return self.infer(self.prepare(texts))


def expected(texts: Sequence[str]) -> np.ndarray:
    lengths = np.array([len(t) / 100 for t in texts], np.float32)
    return np.stack([lengths, lengths / 2], axis=1)


TEXTS = [f"text number {i}" + "!" * i for i in range(8)]


def test_fake_satisfies_the_protocol() -> None:
    assert isinstance(PoisonClassifier(), TextClassifier)


def test_clean_batch_runs_once() -> None:
    clf = PoisonClassifier()
    scores, failed = score_with_split(clf, TEXTS)
    assert failed == {}
    np.testing.assert_allclose(scores, expected(TEXTS))
    assert clf.calls == [("prepare", 8), ("infer", 8)]


def test_prepared_input_is_used_as_given() -> None:
    clf = PoisonClassifier()
    prepared = clf.prepare(TEXTS)
    clf.calls.clear()
    score_with_split(clf, TEXTS, prepared)
    assert clf.calls == [("infer", 8)]


def check_one_poison(clf: PoisonClassifier) -> None:
    texts = list(TEXTS)
    texts[5] = "this has POISON in it"
    scores, failed = score_with_split(clf, texts)
    assert list(failed) == [5]
    assert "RuntimeError" in failed[5] and "model exploded" in failed[5]
    good = [i for i in range(8) if i != 5]
    np.testing.assert_allclose(scores[good], expected([texts[i] for i in good]))
    np.testing.assert_array_equal(scores[5], np.zeros(2))
    assert scores.shape == (8, 2)
    assert scores.dtype == np.float32


def test_one_poison_text_in_infer() -> None:
    clf = PoisonClassifier("infer")
    check_one_poison(clf)
    # halving: 8 -> 4+4 -> (2+2) -> (1+1): a handful of runs, not one per text
    assert sum(1 for stage, _ in clf.calls if stage == "infer") <= 8


def test_one_poison_text_in_prepare() -> None:
    check_one_poison(PoisonClassifier("prepare"))


def test_poison_at_the_edges() -> None:
    texts = ["POISON first", *TEXTS[1:7], "last POISON"]
    scores, failed = score_with_split(PoisonClassifier(), texts)
    assert sorted(failed) == [0, 7]
    np.testing.assert_allclose(scores[1:7], expected(texts[1:7]))


def test_all_poison() -> None:
    texts = [f"POISON {i}" for i in range(5)]
    scores, failed = score_with_split(PoisonClassifier(), texts)
    assert sorted(failed) == [0, 1, 2, 3, 4]
    assert not scores.any()
    assert scores.shape == (5, 2)


def test_single_poison_text() -> None:
    scores, failed = score_with_split(PoisonClassifier(), ["POISON"])
    assert list(failed) == [0]
    assert scores.shape == (1, 2)
