"""A bounded exact-text cache of scores, keyed by a hash of the normalised text.

Chat traffic repeats itself ("gg", "lol", copy-pasted spam); a repeated text
costs a dictionary lookup instead of a model run. The key is a 16-byte
BLAKE2b digest, so memory per entry stays small whatever the text length.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np


def text_key(normalized: str) -> bytes:
    return hashlib.blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ScoreCache:
    """LRU of score rows; safe to share between the tokenising and inference threads."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._rows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: bytes) -> np.ndarray | None:
        if not self.enabled:
            return None
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                self.misses += 1
                return None
            self._rows.move_to_end(key)
            self.hits += 1
            return row

    def put(self, key: bytes, row: np.ndarray) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.max_entries:
                self._rows.popitem(last=False)
