"""Score a labelled JSONL file and report per-category AUPRC/F1 with bootstrap CIs.

``python -m classifiers.evaluate --model-dir DIR --data labelled.jsonl --out OUT``

Each input line is ``{"text": ..., "categories": {cat: true|false}}`` (the
shape of an OpenAI moderation result), ``{"text": ..., "labels": {cat:
0|1|null}}`` (training examples), or a row of OpenAI's moderation-api-release
(``{"prompt": ..., "S": 1, "H": 0, ...}``, short codes). A category missing
from a row is *unknown* for that row and leaves it out of that category's
metrics; parents implied by positive children are filled in.

Reported (JSON on stdout and in ``OUT/eval.json``, curves in
``OUT/pr_curves.png``): per category AUPRC and F1/precision/recall at the
model card's thresholds, each with a seeded 95% percentile-bootstrap CI; the
"any category" AUPRC (max score over categories against any positive label);
and a robustness section: positives re-scored after leetspeak, zero-width,
homoglyph and spaced-letter obfuscation, with the recall lost at the
thresholds.

The metric helpers here are also what training uses to pick thresholds and
fill the model card, so both report the same numbers. Needs numpy,
scikit-learn and onnxruntime, not torch.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.normalize import normalize
from classifiers.taxonomy import CATEGORIES, with_parents

ScoreFn = Callable[[Sequence[str]], np.ndarray]

#: Short codes of OpenAI's moderation-api-release rows.
RELEASE_CODES: dict[str, str] = {
    "S": "sexual",
    "S3": "sexual/minors",
    "H": "hate",
    "H2": "hate/threatening",
    "HR": "harassment",
    "SH": "self-harm",
    "V": "violence",
    "V2": "violence/graphic",
}
MIN_VAL_POSITIVES = 5
DEFAULT_THRESHOLD = 0.5


# ---------------------------------------------------------------- labels


def labels_matrix(
    rows: Sequence[Mapping[str, int | bool | None]], categories: Sequence[str]
) -> np.ndarray:
    """``[n, n_cat]`` float array: 1.0 / 0.0 for known labels, NaN for unknown."""
    out = np.full((len(rows), len(categories)), np.nan, dtype=np.float64)
    for i, labels in enumerate(rows):
        for j, cat in enumerate(categories):
            value = labels.get(cat)
            if value is not None:
                out[i, j] = 1.0 if value else 0.0
    return out


def parse_row(row: Mapping[str, Any]) -> tuple[str, dict[str, int | None]]:
    """One JSONL row -> (text, labels); see the module docstring for the accepted shapes."""
    text = row.get("text", row.get("prompt"))
    if not isinstance(text, str):
        raise ValueError("row has no 'text' (or 'prompt') string")
    labels: dict[str, int | None] = {}
    if isinstance(row.get("categories"), Mapping):
        labels = {k: None if v is None else int(bool(v)) for k, v in row["categories"].items()}
    elif isinstance(row.get("labels"), Mapping):
        labels = {k: None if v is None else int(v) for k, v in row["labels"].items()}
    else:
        labels = {
            cat: int(row[code]) for code, cat in RELEASE_CODES.items() if row.get(code) is not None
        }
    if not labels:
        raise ValueError("row has no 'categories', 'labels' or moderation-api-release codes")
    return text, with_parents(labels)


def load_jsonl(path: Path) -> tuple[list[str], list[dict[str, int | None]]]:
    texts, labels = [], []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                text, row_labels = parse_row(json.loads(line))
            except ValueError as exc:  # JSONDecodeError is a ValueError
                raise ValueError(f"{path}:{lineno}: {exc}") from exc
            texts.append(text)
            labels.append(row_labels)
    return texts, labels


# ---------------------------------------------------------------- metrics


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Same value as sklearn's ``average_precision_score`` (step-wise, ties grouped), faster.

    NaN when ``y`` has no positives. Used inside the bootstrap loop, where
    sklearn's input validation would dominate the run time.
    """
    n_pos = float(y.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[last]
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def prf_at(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``s >= threshold`` (0.0 where undefined)."""
    pred = s >= threshold
    tp = float(np.sum(pred & (y == 1)))
    n_pred, n_pos = float(pred.sum()), float((y == 1).sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def best_f1_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """The score threshold (``s >= t``) that maximises F1 on ``(y, s)``."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, s)
    p, r = precision[:-1], recall[:-1]
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    best = float(thresholds[int(np.argmax(f1))])
    # round down so every score that reached the threshold still does
    return math.floor(best * 1e6) / 1e6


def pick_thresholds(
    scores: np.ndarray,
    labels: np.ndarray,
    categories: Sequence[str],
    min_positives: int = MIN_VAL_POSITIVES,
    default: float = DEFAULT_THRESHOLD,
) -> dict[str, float]:
    """Per category, the F1-maximising threshold on rows with a known label.

    A category with fewer than ``min_positives`` known positives gets
    ``default``: a threshold fitted to two or three examples is noise.
    """
    out: dict[str, float] = {}
    for j, cat in enumerate(categories):
        known = ~np.isnan(labels[:, j])
        y = labels[known, j]
        if y.sum() < min_positives or (y == 0).sum() == 0:
            out[cat] = default
        else:
            out[cat] = best_f1_threshold(y, scores[known, j])
    return out


def any_category(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, score) for "any category": max score vs any known positive.

    A row counts if it has a known positive, or if every category is known
    negative; a row with unknowns and no positive could hide a positive.
    """
    any_pos = np.nansum(labels, axis=1) > 0
    all_neg = ~np.isnan(labels).any(axis=1) & ~any_pos
    rows = any_pos | all_neg
    return any_pos[rows].astype(np.float64), scores[rows].max(axis=1)


def bootstrap_ci(
    stat: Callable[[np.ndarray, np.ndarray], float],
    y: np.ndarray,
    s: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 13,
    alpha: float = 0.05,
) -> list[float] | None:
    """Percentile bootstrap CI of ``stat(y, s)``; resamples where it is undefined are skipped."""
    if len(y) == 0 or n_resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for k in range(n_resamples):
        idx = rng.integers(0, len(y), len(y))
        values[k] = stat(y[idx], s[idx])
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return None
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def _f1_stat(threshold: float) -> Callable[[np.ndarray, np.ndarray], float]:
    def f1(y: np.ndarray, s: np.ndarray) -> float:
        return prf_at(y, s, threshold)[2] if y.sum() else math.nan

    return f1


def _round(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 4)


def evaluate_scores(
    scores: np.ndarray,
    labels: np.ndarray,
    categories: Sequence[str],
    thresholds: Mapping[str, float],
    n_resamples: int = 0,
    seed: int = 13,
) -> dict[str, Any]:
    """Per-category and any-category metrics; with ``n_resamples``, 95% bootstrap CIs too."""
    per_category: dict[str, Any] = {}
    for j, cat in enumerate(categories):
        known = ~np.isnan(labels[:, j])
        y, s = labels[known, j], scores[known, j]
        positives = int(y.sum())
        thr = float(thresholds.get(cat, DEFAULT_THRESHOLD))
        precision, recall, f1 = prf_at(y, s, thr)
        defined = positives > 0 and positives < len(y)
        entry: dict[str, Any] = {
            "auprc": _round(average_precision(y, s)) if defined else None,
            "f1": _round(f1) if positives else None,
            "precision": _round(precision) if positives else None,
            "recall": _round(recall) if positives else None,
            "threshold": round(thr, 6),
            "positives": positives,
            "rows": int(known.sum()),
        }
        if n_resamples and defined:
            entry["auprc_ci95"] = bootstrap_ci(average_precision, y, s, n_resamples, seed)
            entry["f1_ci95"] = bootstrap_ci(_f1_stat(thr), y, s, n_resamples, seed)
        per_category[cat] = entry
    y_any, s_any = any_category(scores, labels)
    any_defined = 0 < y_any.sum() < len(y_any)
    out: dict[str, Any] = {
        "per_category": per_category,
        "any_category_auprc": (_round(average_precision(y_any, s_any)) if any_defined else None),
        "any_category_rows": len(y_any),
        "any_category_positives": int(y_any.sum()),
    }
    if n_resamples and any_defined:
        out["any_category_auprc_ci95"] = bootstrap_ci(
            average_precision, y_any, s_any, n_resamples, seed
        )
    return out


# ---------------------------------------------------------------- obfuscation

_LEET_MAP = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_HOMOGLYPH_MAP = {
    "a": "а", "c": "с", "e": "е", "i": "і", "j": "ј", "o": "о",
    "p": "р", "s": "ѕ", "x": "х", "y": "у",
}  # fmt: skip
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060")


def _map_words(text: str, rng: random.Random, fn: Callable[[str], str], p: float) -> str:
    return " ".join(fn(w) if len(w) >= 3 and rng.random() < p else w for w in text.split(" "))


def leetspeak(text: str, rng: random.Random) -> str:
    """Digits for letters inside words ("kill" -> "k1ll"), the common filter dodge."""

    def word(w: str) -> str:
        inner = "".join(_LEET_MAP.get(c.lower(), c) if rng.random() < 0.7 else c for c in w[1:-1])
        return w[0] + inner + w[-1]

    return _map_words(text, rng, word, 0.6)


def zero_width(text: str, rng: random.Random) -> str:
    """Invisible characters inside words, which split tokens but not what a reader sees."""

    def word(w: str) -> str:
        cut = rng.randrange(1, len(w))
        return w[:cut] + rng.choice(_ZERO_WIDTH) + w[cut:]

    return _map_words(text, rng, word, 0.6)


def homoglyphs(text: str, rng: random.Random) -> str:
    """Cyrillic look-alikes for Latin letters ("hate" -> "hаte")."""
    return "".join(
        _HOMOGLYPH_MAP[c] if c in _HOMOGLYPH_MAP and rng.random() < 0.5 else c for c in text
    )


def spaced_letters(text: str, rng: random.Random) -> str:
    """The longest one or two words spelled out with spaces ("k i l l")."""
    words = text.split(" ")
    candidates = sorted(
        (i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()),
        key=lambda i: (-len(words[i]), i),
    )
    for i in candidates[: rng.choice((1, 2))]:
        words[i] = " ".join(words[i])
    return " ".join(words)


def html_markup(text: str, rng: random.Random) -> str:
    """The text as a web page holds it: a paragraph, entities, an empty tag inside a word."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if long_words:
        i = rng.choice(long_words)
        cut = rng.randrange(1, len(words[i]))
        words[i] = f"{words[i][:cut]}<b></b>{words[i][cut:]}"
    body = " ".join(words).replace("'", "&#39;").replace('"', "&quot;")
    return f'<div class="comment"><p>{body}</p></div>'


OBFUSCATORS: dict[str, Callable[[str, random.Random], str]] = {
    "leetspeak": leetspeak,
    "zero_width": zero_width,
    "homoglyphs": homoglyphs,
    "spaced_letters": spaced_letters,
    "html_markup": html_markup,
}


def robustness(
    score_texts: ScoreFn,
    texts: Sequence[str],
    scores: np.ndarray,
    labels: np.ndarray,
    categories: Sequence[str],
    thresholds: Mapping[str, float],
    seed: int = 13,
    max_rows: int = 1000,
) -> dict[str, Any]:
    """Recall at the thresholds on obfuscated copies of the positives, against the originals."""
    thr = np.array([thresholds.get(c, DEFAULT_THRESHOLD) for c in categories])
    positive_rows = np.flatnonzero(np.nansum(labels, axis=1) > 0)
    rng = np.random.default_rng(seed)
    if len(positive_rows) > max_rows:
        positive_rows = np.sort(rng.choice(positive_rows, max_rows, replace=False))
    if len(positive_rows) == 0:
        return {"rows": 0}
    pos_labels, pos_scores = labels[positive_rows], scores[positive_rows]
    originals = [texts[int(i)] for i in positive_rows]
    out: dict[str, Any] = {"rows": len(positive_rows)}
    for name, obfuscate in OBFUSCATORS.items():
        prng = random.Random(f"{seed}:{name}")
        obfuscated = [obfuscate(t, prng) for t in originals]
        obf_scores = np.asarray(score_texts(obfuscated))
        per_cat: dict[str, Any] = {}
        for j, cat in enumerate(categories):
            pos = pos_labels[:, j] == 1
            if not pos.any():
                continue
            before = float(np.mean(pos_scores[pos, j] >= thr[j]))
            after = float(np.mean(obf_scores[pos, j] >= thr[j]))
            per_cat[cat] = {
                "positives": int(pos.sum()),
                "recall": round(before, 4),
                "recall_obfuscated": round(after, 4),
                "drop": round(before - after, 4),
            }
        flagged_before = float(np.mean((pos_scores >= thr).any(axis=1)))
        flagged_after = float(np.mean((obf_scores >= thr).any(axis=1)))
        out[name] = {
            "changed": round(
                float(np.mean([o != t for o, t in zip(obfuscated, originals, strict=True)])), 4
            ),
            "undone_by_normalize": round(
                float(
                    np.mean(
                        [
                            normalize(o) == normalize(t)
                            for o, t in zip(obfuscated, originals, strict=True)
                        ]
                    )
                ),
                4,
            ),
            "any_category_recall": round(flagged_before, 4),
            "any_category_recall_obfuscated": round(flagged_after, 4),
            "any_category_drop": round(flagged_before - flagged_after, 4),
            "per_category": per_cat,
        }
    return out


# ---------------------------------------------------------------- plotting


def plot_pr_curves(
    scores: np.ndarray,
    labels: np.ndarray,
    categories: Sequence[str],
    thresholds: Mapping[str, float],
    path: Path,
    title: str = "",
) -> Path:
    """One precision-recall panel per category plus "any category", with the operating point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    panels: list[tuple[str, np.ndarray, np.ndarray, float | None]] = []
    for j, cat in enumerate(categories):
        known = ~np.isnan(labels[:, j])
        panels.append((cat, labels[known, j], scores[known, j], thresholds.get(cat)))
    y_any, s_any = any_category(scores, labels)
    panels.append(("any category", y_any, s_any, None))
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, y, s, thr) in zip(axes.flat, panels, strict=False):
        ax.set_title(name, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if y.sum() == 0 or y.sum() == len(y):
            ax.text(0.5, 0.5, "no positives\nor no negatives", ha="center", va="center")
            continue
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, lw=1.5)
        ax.axhline(y.mean(), color="grey", ls=":", lw=1)
        ax.set_title(f"{name}  AP={average_precision(y, s):.3f}  n+={int(y.sum())}", fontsize=9)
        if thr is not None:
            p, r, _ = prf_at(y, s, thr)
            ax.plot([r], [p], "o", color="tab:red", ms=5)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("recall")
    for ax in axes[:, 0]:
        ax.set_ylabel("precision")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- scoring


class WindowedOnnxScorer:
    """Scores texts with one ONNX variant the way serving does: windows, then max per text.

    A stand-in for :class:`classifiers.runtime.OnnxClassifier` that needs only
    onnxruntime, tokenizers and the model directory; training uses it to
    score the validation split with each variant.
    """

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        max_tokens: int = 128,
        stride: int = 96,
        threads: int = 1,
        batch_size: int = 64,
    ) -> None:
        import onnxruntime as ort

        from classifiers.windows import load_tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_path), opts, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.max_tokens, self.stride, self.batch_size = max_tokens, stride, batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        from classifiers.windows import encode_windows, max_per_doc, pad_batch

        n_out = int(self.session.get_outputs()[0].shape[1])
        if not texts:
            return np.zeros((0, n_out), dtype=np.float32)
        windows = encode_windows(self.tokenizer, texts, self.max_tokens, self.stride)
        # length-sorted batches waste little on padding
        order = np.argsort([len(w) for w in windows.ids], kind="stable")
        window_scores = np.empty((len(order), n_out), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            feeds = pad_batch([windows.ids[i] for i in idx])
            window_scores[idx] = self.session.run(["scores"], feeds)[0]
        return max_per_doc(window_scores, windows.doc, len(texts))


def make_scorer(
    model_dir: Path, variant: str | None = None, threads: int = 1
) -> tuple[ScoreFn, str]:
    """The serving runtime's scorer when it is importable, else :class:`WindowedOnnxScorer`.

    Returns the callable and a name saying which was used. ``variant``
    forces the fallback on that ONNX file.
    """
    if variant is None:
        try:
            from classifiers.runtime import OnnxClassifier
        except ImportError:
            pass
        else:
            clf = OnnxClassifier(model_dir)
            return (lambda texts: np.asarray(clf.score(list(texts)), dtype=np.float32)), "runtime"
    card = json.loads((model_dir / "model_card.json").read_text())
    variants = card.get("variants", {})
    chosen = variant or ("int8" if "int8" in variants else next(iter(variants)))
    file = variants.get(chosen, f"model.{chosen}.onnx")
    scorer = WindowedOnnxScorer(
        model_dir / file,
        model_dir / card.get("tokenizer", "tokenizer.json"),
        int(card.get("max_tokens", 128)),
        int(card.get("window_stride", 96)),
        threads,
    )
    return scorer, f"fallback:{file}"


# ---------------------------------------------------------------- CLI


def run_evaluation(
    model_dir: Path,
    data: Path,
    out_dir: Path | None,
    *,
    variant: str | None = None,
    n_resamples: int = 1000,
    seed: int = 13,
    threads: int = 1,
    with_robustness: bool = True,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score ``data`` with the model in ``model_dir``; see the module docstring."""
    card = json.loads((model_dir / "model_card.json").read_text())
    categories = list(card.get("categories", CATEGORIES))
    thresholds = card.get("thresholds", {})
    texts, label_rows = load_jsonl(data)
    if limit:
        texts, label_rows = texts[:limit], label_rows[:limit]
    labels = labels_matrix(label_rows, categories)
    score_texts, scorer_name = make_scorer(model_dir, variant, threads)
    start = time.perf_counter()
    scores = np.asarray(score_texts(texts), dtype=np.float64)
    score_s = time.perf_counter() - start
    report: dict[str, Any] = {
        "model": f"{card.get('name')}@{card.get('version')}",
        "scorer": scorer_name,
        "data": str(data),
        "rows": len(texts),
        "scoring_s": round(score_s, 2),
        "texts_per_s": round(len(texts) / score_s, 1) if score_s else None,
        "bootstrap": {"resamples": n_resamples, "seed": seed, "ci": "95% percentile"},
        **evaluate_scores(scores, labels, categories, thresholds, n_resamples, seed),
    }
    if with_robustness:
        report["robustness"] = robustness(
            score_texts, texts, scores, labels, categories, thresholds, seed
        )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        png = plot_pr_curves(
            scores, labels, categories, thresholds, out_dir / "pr_curves.png",
            title=f"{report['model']} on {data.name}",
        )  # fmt: skip
        report["pr_curves_png"] = str(png)
        (out_dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifiers.evaluate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="labelled JSONL file")
    parser.add_argument("--out", type=Path, default=None, help="folder for eval.json + PNG")
    parser.add_argument(
        "--variant", default=None, help="score this ONNX variant (int8, fp16, fp32) directly"
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the CIs")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows")
    parser.add_argument("--no-robustness", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = run_evaluation(
            args.model_dir,
            args.data,
            args.out,
            variant=args.variant,
            n_resamples=args.bootstrap,
            seed=args.seed,
            threads=args.threads,
            with_robustness=not args.no_robustness,
            limit=args.limit,
        )
    except (OSError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
