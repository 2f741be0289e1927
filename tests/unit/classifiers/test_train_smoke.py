"""`modstream train` end to end on the smoke config: data -> train -> export -> evaluate -> card.

Runs the real command on the real data in ``shared/data`` the way the
default config does: a student config whose teacher run is missing, so the
one command trains the teacher (smoke.yaml) first, then the 4-layer student
from it (about 2 minutes on one thread). The teacher trains in fp32 with the
default AdamW, the student with the fused one and ``precision: auto`` as
default.yaml does (bf16 on a CPU with AMX, else fp32).
Then loads both the way a worker would.
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
from classifiers.train import cpu_has_amx_bf16, resolve_precision


def test_smoke_training_writes_a_model_the_runtime_serves(repo_root: Path, tmp_path: Path) -> None:
    smoke = repo_root / "classifiers" / "configs" / "smoke.yaml"
    teacher = tmp_path / "teacher"
    student_config = tmp_path / "student.yaml"
    student_config.write_text(
        smoke.read_text()
        .replace(
            "  max_windows_per_doc: 2\n",
            "  max_windows_per_doc: 2\n  num_layers: 4\n  init: teacher\n",
        )
        .replace("  epochs: 1\n", "  epochs: 1\n  precision: auto\n  fused_optimizer: true\n")
        + f"distill:\n  teacher_run: {teacher}\n  teacher_config: {smoke}\n  weight: 0.5\n"
    )
    out = tmp_path / "student"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "train",
            "--config",
            str(student_config),
            "--out",
            str(out),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "teacher: training" in proc.stderr
    teacher_card = load_card(teacher)
    card = load_card(out)
    assert card.training["teacher"]["model"] == teacher_card.model_id  # type: ignore[attr-defined]
    assert card.training["config"]["model"]["num_layers"] == 4  # type: ignore[attr-defined]
    assert card.training["config"]["train"]["precision"] == "auto"  # type: ignore[attr-defined]
    ran = resolve_precision("auto", cpu_has_amx_bf16())
    assert card.training["precision"] == ran  # type: ignore[attr-defined]
    assert teacher_card.training["precision"] == "fp32"  # type: ignore[attr-defined]
    assert set(card.training["phase_s"]) >= {"data", "teacher", "train", "export"}  # type: ignore[attr-defined]
    assert card.categories == CATEGORIES
    assert card.training["export"]["int8_recipe"] == "static"  # type: ignore[attr-defined]
    assert card.data_sources and all(s.licence for s in card.data_sources)
    assert not any(s.name == "ethos" for s in card.data_sources), "GPL data must not ship"
    manifest = json.loads((out / "manifest.json").read_text())
    # the run's manifest carries the build's counters, so it shows what was dropped
    assert isinstance(manifest["dropped_benchmark"], int)
    used = [s for s in manifest["sources"].values() if s["rows"]]
    assert used and all(s["inputs_sha256"] and s["counts"] for s in used)
    meta = json.loads((out / "checkpoint" / "meta.json").read_text())
    assert meta["encoder_config"]["num_hidden_layers"] == 4
    for model in (teacher, out):
        clf = OnnxClassifier(model, variant="int8", intra_op_threads=1)
        scores = clf.score(["hello there", "a longer message " * 80])
        assert scores.shape == (2, len(CATEGORIES))
        assert np.all((scores >= 0) & (scores <= 1))
