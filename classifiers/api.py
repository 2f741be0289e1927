"""What the stream, the HTTP endpoint and the CLI see of a classifier.

A classifier turns texts into per-category scores. Scoring is split into
``prepare`` (tokenise: CPU work that can run on one thread) and ``infer``
(run the model: another thread or a GPU), so a caller can prepare the next
batch while this one runs; ``score`` does both. :func:`to_result` shapes a
row of scores like OpenAI's moderation result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextClassifier(Protocol):
    """Texts in, a ``[len(texts), len(categories)]`` float32 array of scores out."""

    name: str
    version: str
    categories: tuple[str, ...]
    thresholds: Mapping[str, float]
    provider: str

    def prepare(self, texts: Sequence[str]) -> Any: ...

    def infer(self, prepared: Any) -> np.ndarray: ...

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


def to_result(
    scores: np.ndarray, categories: Sequence[str], thresholds: Mapping[str, float]
) -> dict[str, Any]:
    """One OpenAI-shaped result (``flagged``, ``categories``, ``category_scores``)."""
    category_scores = {c: round(float(s), 6) for c, s in zip(categories, scores, strict=True)}
    flags = {c: category_scores[c] >= thresholds.get(c, 0.5) for c in categories}
    return {"flagged": any(flags.values()), "categories": flags, "category_scores": category_scores}


class NullClassifier:
    """Does no work: all-zero scores. Measures the plumbing ceiling in ``modstream bench``."""

    name = "null"
    version = "0"
    provider = "none"

    def __init__(self, categories: Sequence[str]) -> None:
        self.categories = tuple(categories)
        self.thresholds: Mapping[str, float] = dict.fromkeys(self.categories, 0.5)

    def prepare(self, texts: Sequence[str]) -> int:
        return len(texts)

    def infer(self, prepared: int) -> np.ndarray:
        return np.zeros((prepared, len(self.categories)), dtype=np.float32)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return self.infer(self.prepare(texts))


def load_classifier(model_dir: Any = None, **options: Any) -> TextClassifier:
    """The ONNX classifier for ``model_dir`` (the bundled model when ``None``).

    Imported lazily so that code which only needs the protocol (the stream's
    tests with a fake classifier) does not load ONNX Runtime.
    """
    from classifiers.runtime import DEFAULT_MODEL_DIR, OnnxClassifier

    return OnnxClassifier(model_dir or DEFAULT_MODEL_DIR, **options)


def moderate(classifier: TextClassifier, texts: Sequence[str]) -> list[dict[str, Any]]:
    """OpenAI-shaped results for ``texts`` at the model card's thresholds."""
    scores = classifier.score(texts)
    return [to_result(row, classifier.categories, classifier.thresholds) for row in scores]
