"""`modstream train` end to end on the smoke config: data -> train -> export -> evaluate -> card.

Runs the real command (about 80 s on one thread) on the real data in
``shared/data``, then loads what it wrote the way a worker would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from classifiers.card import load_card
from classifiers.runtime import OnnxClassifier
from classifiers.taxonomy import CATEGORIES


def test_smoke_training_writes_a_model_the_runtime_serves(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "train",
            "--config",
            str(repo_root / "classifiers" / "configs" / "smoke.yaml"),
            "--out",
            str(out),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = load_card(out)
    assert card.categories == CATEGORIES
    assert card.training["export"]["int8_recipe"] == "static"  # type: ignore[attr-defined]
    assert card.data_sources and all(s.licence for s in card.data_sources)
    assert not any(s.name == "ethos" for s in card.data_sources), "GPL data must not ship"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest
    clf = OnnxClassifier(out, variant="int8", intra_op_threads=1)
    scores = clf.score(["hello there", "a longer message " * 80])
    assert scores.shape == (2, len(CATEGORIES))
    assert np.all((scores >= 0) & (scores <= 1))
