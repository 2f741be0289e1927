"""Cut normalised, tokenised texts into model-sized windows, the same way in training and scoring.

A text longer than the model's window is scored over overlapping windows and
each category takes the maximum over them, so a threat at the end of a long
post is not truncated away. Training, evaluation and serving must cut windows
identically, so they all call :func:`encode_windows`.

Window geometry: ``max_tokens`` counts ``[CLS]`` and ``[SEP]``, so a window
holds ``max_tokens - 2`` text tokens; consecutive windows start ``stride``
tokens apart (``stride`` is the step, not the overlap: 128/96 gives 126-token
windows overlapping by 30), until a window reaches the end of the text; the
last window may be shorter. This is the serving runtime's geometry
(:meth:`classifiers.runtime.OnnxClassifier.windows`); a unit test holds the
two together.

Needs only ``tokenizers`` and numpy (no torch), so serving can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from classifiers.normalize import normalize

CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
PAD_ID = 0


@dataclass(frozen=True)
class Windows:
    """Token windows of a list of texts, flattened.

    ``ids[k]`` is one window (with ``[CLS]``/``[SEP]``); ``doc[k]`` is the index of
    the text it came from. Every text has at least one window, in text order.
    """

    ids: list[list[int]]
    doc: np.ndarray

    @property
    def n_docs(self) -> int:
        return int(self.doc.max()) + 1 if len(self.doc) else 0


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load ``tokenizer.json`` with its built-in truncation and padding switched off.

    The bundled file truncates and pads to 128; windowing needs the whole text,
    and batches are padded to their own longest window.
    """
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return tok


def window_starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """Start offsets of the text-token windows covering ``n_tokens`` tokens.

    Windows start every ``stride`` tokens until one reaches the end (the last
    one may be shorter), exactly as :meth:`classifiers.runtime.OnnxClassifier.windows`.

    >>> window_starts(10, 126, 96)
    [0]
    >>> window_starts(300, 126, 96)
    [0, 96, 192]
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + stride)
    return starts


def split_windows(
    token_ids: Sequence[int], cls_id: int, sep_id: int, max_tokens: int, stride: int
) -> list[list[int]]:
    """One text's token ids (no special tokens) -> windows of at most ``max_tokens`` ids."""
    window = max_tokens - 2
    if stride > window:
        raise ValueError(f"stride {stride} is larger than the window ({window} text tokens)")
    ids = list(token_ids)
    return [[cls_id, *ids[s : s + window], sep_id] for s in window_starts(len(ids), window, stride)]


def encode_windows(
    tokenizer: Tokenizer, texts: Sequence[str], max_tokens: int = 128, stride: int = 96
) -> Windows:
    """Normalise, tokenise and window ``texts`` (see the module docstring for the geometry)."""
    cls_id = tokenizer.token_to_id(CLS_TOKEN)
    sep_id = tokenizer.token_to_id(SEP_TOKEN)
    if cls_id is None or sep_id is None:
        raise ValueError("tokenizer has no [CLS]/[SEP] tokens; is it a BERT WordPiece tokenizer?")
    encodings = tokenizer.encode_batch([normalize(t) for t in texts], add_special_tokens=False)
    ids: list[list[int]] = []
    doc: list[int] = []
    for i, enc in enumerate(encodings):
        for w in split_windows(enc.ids, cls_id, sep_id, max_tokens, stride):
            ids.append(w)
            doc.append(i)
    return Windows(ids=ids, doc=np.asarray(doc, dtype=np.int64))


def pad_batch(windows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Pad windows to the longest one: the three int64 model inputs."""
    if not windows:
        raise ValueError("pad_batch needs at least one window")
    width = max(len(w) for w in windows)
    input_ids = np.full((len(windows), width), PAD_ID, dtype=np.int64)
    attention_mask = np.zeros((len(windows), width), dtype=np.int64)
    for row, w in enumerate(windows):
        input_ids[row, : len(w)] = w
        attention_mask[row, : len(w)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": np.zeros_like(input_ids),
    }


def max_per_doc(window_scores: np.ndarray, doc: np.ndarray, n_docs: int) -> np.ndarray:
    """Per-text scores: the maximum over each text's windows, per category."""
    out = np.full((n_docs, window_scores.shape[1]), -np.inf, dtype=window_scores.dtype)
    np.maximum.at(out, doc, window_scores)
    return out
