"""The classifier API the stream, HTTP endpoint and CLI share: OpenAI-shaped results."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.api import NullClassifier, TextClassifier, moderate, to_result
from classifiers.taxonomy import CATEGORIES


def test_to_result_has_openais_shape() -> None:
    scores = np.linspace(0.0, 1.0, len(CATEGORIES), dtype=np.float32)
    result = to_result(scores, CATEGORIES, dict.fromkeys(CATEGORIES, 0.5))
    assert set(result) == {"flagged", "categories", "category_scores"}
    assert list(result["categories"]) == list(CATEGORIES)
    assert list(result["category_scores"]) == list(CATEGORIES)
    assert all(type(v) is bool for v in result["categories"].values())
    assert all(type(v) is float for v in result["category_scores"].values())
    assert type(result["flagged"]) is bool
    assert result["flagged"] is True
    assert result["category_scores"]["sexual"] == 0.0
    assert result["category_scores"]["violence/graphic"] == 1.0


def test_threshold_is_inclusive_and_per_category() -> None:
    cats = ("hate", "violence")
    result = to_result(np.array([0.3, 0.3], np.float32), cats, {"hate": 0.3, "violence": 0.31})
    assert result["categories"] == {"hate": True, "violence": False}
    assert result["flagged"] is True
    low = to_result(np.array([0.1, 0.1], np.float32), cats, {"hate": 0.3})
    assert low["flagged"] is False  # violence falls back to 0.5


def test_scores_are_rounded() -> None:
    result = to_result(np.array([0.1234567891], np.float32), ("hate",), {"hate": 0.5})
    assert result["category_scores"]["hate"] == pytest.approx(0.123457, abs=1e-9)


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        to_result(np.zeros(3, np.float32), CATEGORIES, {})


def test_null_classifier() -> None:
    clf = NullClassifier(CATEGORIES)
    assert isinstance(clf, TextClassifier)
    scores = clf.score(["a", "b", "c"])
    assert scores.shape == (3, len(CATEGORIES))
    assert scores.dtype == np.float32
    assert not scores.any()
    assert clf.score([]).shape == (0, len(CATEGORIES))
    assert clf.infer(clf.prepare(["x"])).shape == (1, len(CATEGORIES))


def test_moderate_gives_one_unflagged_result_per_text_for_null() -> None:
    results = moderate(NullClassifier(CATEGORIES), ["a", "b"])
    assert len(results) == 2
    assert all(r["flagged"] is False for r in results)
