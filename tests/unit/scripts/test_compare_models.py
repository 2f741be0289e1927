"""scripts/compare_models.py: each side scored by its checkout, paired metrics, leaked texts left out."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from classifiers.dataset import text_id
from classifiers.taxonomy import CATEGORIES

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location(
    "compare_models", ROOT / "scripts" / "compare_models.py"
)
assert _spec is not None and _spec.loader is not None
compare_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_models)

ROWS = [
    ("i will find you and hurt you", {"harassment": 1, "harassment/threatening": 1, "hate": 0}),
    ("have a lovely day everyone", dict.fromkeys(CATEGORIES, 0)),
    ("all of them are vermin and should be wiped out", {"hate": 1, "hate/threatening": 1}),
    ("thanks for the help earlier", dict.fromkeys(CATEGORIES, 0)),
    ("you are a worthless idiot", {"harassment": 1, "hate": 0}),
    ("see you at practice tomorrow", dict.fromkeys(CATEGORIES, 0)),
]


def test_metrics_on_a_hand_made_array() -> None:
    labels = np.full((4, len(CATEGORIES)), np.nan)
    hate = CATEGORIES.index("hate")
    labels[:, hate] = [1, 0, 1, 0]
    scores = np.zeros_like(labels)
    scores[:, hate] = [0.9, 0.1, 0.8, 0.2]  # perfectly ranked
    out = compare_models.metrics(scores, labels)
    assert out["hate"] == pytest.approx(1.0)
    assert out["any"] == pytest.approx(1.0)
    assert out["macro8"] == out["macro11"] == pytest.approx(1.0)  # hate is the only defined one


def test_same_model_on_both_sides_ties_and_leaked_texts_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "val.jsonl"
    data.write_text("".join(json.dumps({"text": t, "labels": y}) + "\n" for t, y in ROWS))
    index = tmp_path / "index.jsonl.gz"
    leaked = text_id(ROWS[0][0])
    with gzip.open(index, "wt") as fh:
        fh.write(json.dumps({"id": leaked, "split": "train"}) + "\n")
    model = f"{ROOT}:{ROOT / 'classifiers' / 'models' / 'modstream-minilm'}"
    code = compare_models.main(
        ["--data", str(data), "--a", model, "--b", model, "--exclude-train-of", str(index),
         "--resamples", "5"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "left out 1 texts the baseline trained on" in out
    assert "5 texts; paired bootstrap" in out
    any_line = next(line for line in out.splitlines() if line.startswith("any "))
    a, b, diff = any_line.split()[1:4]
    assert a == b and float(diff) == 0.0


def test_by_source_splits_any_category_auprc_by_corpus() -> None:
    """Each source scored on its own rows; an all-positive source (AUPRC undefined) is left out."""
    hate = CATEGORIES.index("hate")
    labels = np.zeros((7, len(CATEGORIES)))
    labels[:, hate] = [1, 0, 1, 0, 0, 1, 1]
    a = np.zeros_like(labels)
    b = np.zeros_like(labels)
    a[:, hate] = [0.9, 0.1, 0.8, 0.2, 0.3, 0.7, 0.6]  # ranks x perfectly
    b[:, hate] = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7, 0.6]  # a negative on top in x
    sources = ["x", "x", "x", "x", "y", "y", "z"]
    rows = compare_models.by_source(a, b, labels, sources)
    assert [(s, n, pos) for s, n, pos, _, _ in rows] == [("x", 4, 2), ("y", 2, 1)]
    assert rows[0][3] == pytest.approx(1.0)
    assert rows[0][4] < 1.0
    assert rows[1][3] == rows[1][4] == pytest.approx(1.0)


def test_read_sources_follows_the_rows(tmp_path: Path) -> None:
    data = tmp_path / "val.jsonl"
    data.write_text('{"text": "a", "labels": {}, "source": "s1"}\n\n{"text": "b", "labels": {}}\n')
    assert compare_models.read_sources(data) == ["s1", "?"]
