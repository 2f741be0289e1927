"""Evaluation metrics, bootstrap CIs, input parsing and the obfuscators."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from classifiers.evaluate import (
    OBFUSCATORS,
    any_category,
    average_precision,
    best_f1_threshold,
    bootstrap_ci,
    evaluate_scores,
    labels_matrix,
    load_jsonl,
    parse_row,
    pick_thresholds,
    plot_pr_curves,
    prf_at,
    robustness,
)
from classifiers.normalize import normalize

CATS = ("hate", "violence", "sexual")
NAN = math.nan

# hand-made: 8 rows x 3 categories; violence unknown on two rows, sexual has 1 positive
LABELS = np.array(
    [
        [1, 0, 0],
        [1, 1, 0],
        [0, NAN, 0],
        [0, 0, 0],
        [1, 0, 1],
        [0, 1, 0],
        [0, NAN, 0],
        [0, 0, 0],
    ],
    dtype=float,
)
SCORES = np.array(
    [
        [0.9, 0.1, 0.2],
        [0.8, 0.7, 0.1],
        [0.7, 0.99, 0.1],  # high violence score on an unknown label: must not count
        [0.2, 0.2, 0.3],
        [0.6, 0.3, 0.4],
        [0.1, 0.6, 0.1],
        [0.05, 0.95, 0.2],
        [0.3, 0.1, 0.1],
    ]
)


def test_average_precision_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n).astype(float)
        if y.sum() == 0:
            y[0] = 1
        s = np.round(rng.random(n), 1)  # many ties
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    assert math.isnan(average_precision(np.zeros(3), np.ones(3)))


def test_prf_and_best_threshold() -> None:
    y = np.array([1, 1, 0, 0, 1.0])
    s = np.array([0.9, 0.8, 0.7, 0.1, 0.75])
    assert prf_at(y, s, 0.75) == (1.0, 1.0, 1.0)
    p, r, f = prf_at(y, s, 0.85)
    assert (p, r) == (1.0, pytest.approx(1 / 3)) and f == pytest.approx(0.5)
    assert prf_at(y, s, 2.0) == (0.0, 0.0, 0.0)
    t = best_f1_threshold(y, s)
    assert 0.7 < t <= 0.75 and prf_at(y, s, t)[2] == 1.0


def test_metrics_on_hand_made_array() -> None:
    thresholds = pick_thresholds(SCORES, LABELS, CATS, min_positives=2)
    assert thresholds["hate"] == pytest.approx(0.6)  # 0.9, 0.8, 0.6 positive; 0.7 negative
    assert thresholds["sexual"] == 0.5  # one positive < min_positives: the default
    report = evaluate_scores(SCORES, LABELS, CATS, thresholds)
    hate = report["per_category"]["hate"]
    assert hate["positives"] == 3 and hate["rows"] == 8
    assert hate["auprc"] == pytest.approx(
        average_precision_score(LABELS[:, 0], SCORES[:, 0]), abs=1e-4
    )
    assert hate["recall"] == 1.0 and hate["precision"] == 0.75
    violence = report["per_category"]["violence"]
    assert violence["rows"] == 6  # the two unknown rows are left out
    known = ~np.isnan(LABELS[:, 1])
    assert violence["auprc"] == pytest.approx(
        average_precision_score(LABELS[known, 1], SCORES[known, 1]), abs=1e-4
    )
    assert violence["auprc"] == 1.0  # perfect once the unknown 0.99 / 0.95 rows are masked
    sexual = report["per_category"]["sexual"]
    assert sexual["positives"] == 1 and sexual["threshold"] == 0.5


def test_any_category_rows() -> None:
    y, s = any_category(SCORES, LABELS)
    # rows 2 and 6 have an unknown label and no positive: left out
    assert len(y) == 6
    assert y.tolist() == [1, 1, 0, 1, 1, 0]
    assert s.tolist() == [0.9, 0.8, 0.3, 0.6, 0.6, 0.3]
    report = evaluate_scores(SCORES, LABELS, CATS, dict.fromkeys(CATS, 0.5))
    assert report["any_category_rows"] == 6 and report["any_category_positives"] == 4
    assert report["any_category_auprc"] == pytest.approx(average_precision_score(y, s), abs=1e-4)


def test_bootstrap_ci_contains_point_estimate_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300).astype(float)
    s = np.clip(y * 0.3 + rng.random(300) * 0.8, 0, 1)
    point = average_precision(y, s)
    lo, hi = bootstrap_ci(average_precision, y, s, n_resamples=300, seed=7)
    assert lo < point < hi and hi - lo < 0.2
    assert bootstrap_ci(average_precision, y, s, n_resamples=300, seed=7) == [lo, hi]
    report = evaluate_scores(SCORES, LABELS, CATS, dict.fromkeys(CATS, 0.5), n_resamples=200)
    hate = report["per_category"]["hate"]
    assert hate["auprc_ci95"][0] <= hate["auprc"] <= hate["auprc_ci95"][1]
    assert hate["f1_ci95"][0] <= hate["f1"] <= hate["f1_ci95"][1]


SENTENCES = [
    "I am going to kill you and your whole family tonight",
    "people like them should be removed from this country",
    "send me pictures of yourself right now",
    "nobody would miss you if you disappeared forever",
    "those animals deserve to suffer for what they did",
    "I want to hurt myself again tonight",
    "you are a worthless pathetic loser and everyone hates you",
    "shut up idiot before someone makes you",
]


@pytest.mark.parametrize("name", sorted(OBFUSCATORS))
def test_obfuscators_change_text_and_normalize_undoes_most(name: str) -> None:
    obfuscate = OBFUSCATORS[name]
    rng = random.Random(3)
    obfuscated = [obfuscate(t, rng) for t in SENTENCES]
    assert sum(o != t for o, t in zip(obfuscated, SENTENCES, strict=True)) >= 6
    restored = [normalize(o) == normalize(t) for o, t in zip(obfuscated, SENTENCES, strict=True)]
    assert sum(restored) >= len(SENTENCES) // 2, (name, obfuscated)
    # seeded: the same rng seed gives the same copies
    again = random.Random(3)
    assert [obfuscate(t, again) for t in SENTENCES] == obfuscated


def test_robustness_reports_recall_drop() -> None:
    texts = ["kill them all", "have a nice day", "i hate those people"]
    labels = np.array([[0, 1, NAN], [0, 0, 0], [1, 0, NAN]], dtype=float)

    def score_texts(batch):  # a toy "model" that only sees the plain words
        return np.array([[float("hate" in t), float("kill" in t), 0.0] for t in batch], dtype=float)

    scores = score_texts(texts)
    out = robustness(score_texts, texts, scores, labels, CATS, dict.fromkeys(CATS, 0.5))
    assert out["rows"] == 2  # the two texts with a positive label
    assert out["zero_width"]["per_category"]["violence"]["recall"] == 1.0
    for name in OBFUSCATORS:
        entry = out[name]
        assert set(entry) >= {"changed", "undone_by_normalize", "any_category_drop", "per_category"}
        cat = entry["per_category"]["hate"]
        assert cat["drop"] == pytest.approx(cat["recall"] - cat["recall_obfuscated"])


def test_parse_row_shapes() -> None:
    text, labels = parse_row(
        {"text": "x", "categories": {"hate/threatening": True, "sexual": False}}
    )
    assert labels["hate"] == 1 and labels["hate/threatening"] == 1 and labels["sexual"] == 0
    _, labels = parse_row({"text": "x", "labels": {"violence": None, "harassment": 1}})
    assert labels["violence"] is None and labels["harassment"] == 1
    _, labels = parse_row({"prompt": "x", "S": 0, "H": 1, "V2": 0, "HR": 0})
    assert labels == {"sexual": 0, "hate": 1, "violence/graphic": 0, "harassment": 0}
    with pytest.raises(ValueError, match="text"):
        parse_row({"categories": {}})
    with pytest.raises(ValueError, match="categories"):
        parse_row({"text": "no labels"})


def test_load_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"text": "a", "labels": {"hate": 1}}) + "\n\n{broken\n")
    with pytest.raises(ValueError, match=r"data.jsonl:3"):
        load_jsonl(path)
    path.write_text(json.dumps({"text": "a", "labels": {"hate": 1}}) + "\n")
    texts, labels = load_jsonl(path)
    assert texts == ["a"]
    assert labels_matrix(labels, CATS).tolist()[0][0] == 1.0
    assert math.isnan(labels_matrix(labels, CATS)[0, 1])


def test_plot_writes_png(tmp_path: Path) -> None:
    path = plot_pr_curves(SCORES, LABELS, CATS, {"hate": 0.6}, tmp_path / "pr.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
