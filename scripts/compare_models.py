"""Paired comparison of two models on one labelled JSONL file (validation split).

Each model is scored by the code of its own checkout (``CHECKOUT:MODEL_DIR``),
because a model must be served behind the normaliser it was trained with:
to compare against the previous release, check its commit out somewhere
(``git worktree add /tmp/prev REV``) and pass ``/tmp/prev:/tmp/prev/classifiers/models/modstream-minilm``.
Texts the older model trained on can be left out with ``--exclude-train-of``
and the label index of its commit (``git show REV:classifiers/data/curated/labels.jsonl.gz``).

    python scripts/compare_models.py --data runs/full-v5/val.jsonl \\
        --a /tmp/prev:/tmp/prev/classifiers/models/modstream-minilm \\
        --b .:classifiers/models/modstream-minilm --exclude-train-of /tmp/prev-index.jsonl.gz

Prints any-category, macro (the external set's 8 categories and all 11) and
per-category AUPRC of both, with paired bootstrap CIs of the differences;
``--by-source`` adds any-category AUPRC per source (the rows' ``source``), to
see which corpora a difference comes from.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from classifiers.dataset import read_index, text_id
from classifiers.evaluate import (
    RELEASE_CODES,
    any_category,
    average_precision,
    labels_matrix,
    load_jsonl,
)
from classifiers.taxonomy import CATEGORIES

#: The external set's 8 categories: those its release rows label.
EXTERNAL = tuple(RELEASE_CODES.values())

_SCORE = """
import sys
from pathlib import Path
import numpy as np
from classifiers.evaluate import load_jsonl
from classifiers.runtime import OnnxClassifier
texts, _ = load_jsonl(Path(sys.argv[2]))
np.save(sys.argv[3], OnnxClassifier(Path(sys.argv[1]), variant="int8").score(texts))
"""


def score_with_checkout(spec: str, data: Path, out: Path) -> np.ndarray:
    """Scores from ``CHECKOUT:MODEL_DIR``, run by that checkout's own code."""
    checkout, _, model_dir = spec.partition(":")
    root = Path(checkout).resolve()
    # run in the checkout: "python -c" puts the working directory first on sys.path
    subprocess.run(
        [
            sys.executable,
            "-c",
            _SCORE,
            str(Path(model_dir).resolve()),
            str(data.resolve()),
            str(out),
        ],
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
        check=True,
    )
    return np.load(out)


def _mean(values: list[float]) -> float:
    """NaN when no category is defined (a tiny bootstrap resample can hold no positive)."""
    return float(np.mean(values)) if values else float("nan")


def metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for j, cat in enumerate(CATEGORIES):
        known = ~np.isnan(labels[:, j])
        y = labels[known, j]
        if 0 < y.sum() < len(y):
            out[cat] = average_precision(y, scores[known, j])
    y_any, s_any = any_category(scores, labels)
    out["macro8"] = _mean([out[c] for c in EXTERNAL if c in out])
    out["macro11"] = _mean([out[c] for c in CATEGORIES if c in out])
    out["any"] = average_precision(y_any, s_any)
    return out


def trained_on(index: Path) -> set[str]:
    return {r["id"] for r in read_index(index) if r["split"] == "train"}


def read_sources(path: Path) -> list[str]:
    """Each row's ``source`` ("?" where a row names none), in ``load_jsonl``'s order."""
    with path.open(encoding="utf-8") as fh:
        return [str(json.loads(line).get("source", "?")) for line in fh if line.strip()]


def by_source(
    scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray, sources: list[str]
) -> list[tuple[str, int, int, float, float]]:
    """(source, texts, positives, any-category AUPRC of a, of b) per source, largest first.

    Only sources whose any-category label is defined for some rows and has both
    classes: AUPRC is undefined on all-positive corpora.
    """
    names = np.asarray(sources)
    out = []
    for source in sorted(set(sources)):
        rows = names == source
        y, any_a = any_category(scores_a[rows], labels[rows])
        _, any_b = any_category(scores_b[rows], labels[rows])
        if 0 < y.sum() < len(y):
            ap_a, ap_b = average_precision(y, any_a), average_precision(y, any_b)
            out.append((source, len(y), int(y.sum()), ap_a, ap_b))
    return sorted(out, key=lambda r: -r[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--a", required=True, help="CHECKOUT:MODEL_DIR of the baseline")
    parser.add_argument("--b", required=True, help="CHECKOUT:MODEL_DIR of the candidate")
    parser.add_argument("--exclude-train-of", type=Path, help="label index: drop its train texts")
    parser.add_argument("--resamples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--by-source", action="store_true", help="also any-category AUPRC per source"
    )
    args = parser.parse_args(argv)

    texts, rows = load_jsonl(args.data)
    labels = labels_matrix(rows, CATEGORIES)
    with tempfile.TemporaryDirectory() as tmp:
        a = score_with_checkout(args.a, args.data, Path(tmp) / "a.npy")
        b = score_with_checkout(args.b, args.data, Path(tmp) / "b.npy")
    keep = np.ones(len(texts), dtype=bool)
    if args.exclude_train_of:
        seen = trained_on(args.exclude_train_of)
        keep = np.array([text_id(t) not in seen for t in texts])
        print(f"left out {int((~keep).sum())} texts the baseline trained on")
    labels, a, b = labels[keep], a[keep], b[keep]
    ma, mb = metrics(a, labels), metrics(b, labels)
    rng = np.random.default_rng(args.seed)
    diffs: dict[str, list[float]] = {k: [] for k in ("any", "macro8", "macro11")}
    for _ in range(args.resamples):
        idx = rng.integers(0, len(labels), len(labels))
        ra, rb = metrics(a[idx], labels[idx]), metrics(b[idx], labels[idx])
        for k, values in diffs.items():
            values.append(rb[k] - ra[k])
    print(f"{len(labels)} texts; paired bootstrap, {args.resamples} resamples")
    print(f"{'metric':24s} {'a':>7s} {'b':>7s}  b-a    95% CI of b-a     P(b>a)")
    for key in ("any", "macro8", "macro11", *CATEGORIES):
        if key not in ma:
            continue
        line = f"{key:24s} {ma[key]:7.4f} {mb[key]:7.4f}  {mb[key] - ma[key]:+.4f}"
        if key in diffs:
            d = np.array(diffs[key])
            lo, hi = np.percentile(d, [2.5, 97.5])
            line += f"  [{lo:+.4f}, {hi:+.4f}]  {np.mean(d > 0):.2f}"
        print(line)
    if args.by_source:
        sources = [s for s, k in zip(read_sources(args.data), keep, strict=True) if k]
        print(
            f"\n{'any category by source':34s} {'texts':>6s} {'pos':>5s} {'a':>7s} {'b':>7s}  b-a"
        )
        for source, n, pos, ap_a, ap_b in by_source(a, b, labels, sources):
            print(f"{source:34s} {n:6d} {pos:5d} {ap_a:7.4f} {ap_b:7.4f}  {ap_b - ap_a:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
