"""The held-out probe sets stay out of training and parse as evaluation data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifiers.data.write_examples import parse
from classifiers.dataset import dedupe_key, read_index, text_id
from classifiers.evaluate import load_jsonl

DATA = Path(__file__).resolve().parents[3] / "classifiers" / "data"
HOLDOUT = sorted((DATA / "holdout").glob("*.jsonl"))


def _index_ids() -> set[str]:
    return {row["id"] for row in read_index(DATA / "curated" / "labels.jsonl.gz")}


def _written_keys() -> set[str]:
    """Built written lines and candidate lines: a candidate built later must not leak the holdout."""
    keys = set()
    for path in (DATA / "written").glob("*.jsonl"):
        with path.open(encoding="utf-8") as fh:
            keys.update(dedupe_key(json.loads(line)["text"]) for line in fh)
    for path in (DATA / "written" / "candidates").glob("*.txt"):
        rows, _ = parse(path)
        keys.update(dedupe_key(text) for text, _ in rows)
    return keys


def test_there_is_a_holdout_set() -> None:
    assert HOLDOUT, "classifiers/data/holdout/*.jsonl is missing"


@pytest.mark.parametrize("path", HOLDOUT, ids=lambda p: p.name)
def test_holdout_texts_are_not_training_texts(path: Path) -> None:
    texts, _ = load_jsonl(path)
    ids, keys = _index_ids(), _written_keys()
    in_index = [t for t in texts if text_id(t) in ids]
    in_written = [t for t in texts if dedupe_key(t) in keys]
    assert not in_index, f"{len(in_index)} held-out texts are in the label index: {in_index[:3]}"
    assert not in_written, (
        f"{len(in_written)} held-out texts duplicate written or candidate lines: {in_written[:3]}"
    )


@pytest.mark.parametrize("path", HOLDOUT, ids=lambda p: p.name)
def test_holdout_rows_label_what_they_probe(path: Path) -> None:
    texts, labels = load_jsonl(path)
    assert len(texts) == len(set(texts)), "duplicate held-out texts"
    for text, row in zip(texts, labels, strict=True):
        assert row.get("hate") in (0, 1) and row.get("self-harm") in (0, 1), text
