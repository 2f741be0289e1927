"""Text normalisation against obfuscation, shared by training and serving.

The model must see the same string in training and in production, so both
call :func:`normalize` and nothing else. It undoes the cheap tricks people
use to slip past filters: zero-width characters, homoglyphs from other
scripts, leetspeak inside words, spaced-out letters and stretched letters.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_ZERO_WIDTH = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"),
    None,
)

# Cyrillic and Greek letters that render like Latin ones (NFKC leaves them alone).
_HOMOGLYPHS = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕНІЈКМОРСТХУЅαβεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧΖ",
    "aeopcyxijsdqwABEHIJKMOPCTXYSabeiknoptuxABEHIKMNOPTYXZ",
)

_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
# A leet character counts only between two letters ("k1ll", "f4gg0t"), so
# numbers, prices and times ("2024", "$5", "5pm") are left as they are.
_LEET_RE = re.compile(r"(?<=[^\W\d_])[013457@$!]+(?=[^\W\d_])")
# Four or more single letters joined by one repeated separator: "k i l l", "h.u.r.t".
# The backreference keeps a separate word out: "i h.u.r.t" -> "i hurt".
_SPACED_RE = re.compile(r"\b[^\W\d_]([ .\-_*])(?:[^\W\d_]\1){2,}[^\W\d_]\b")
_STRETCH_RE = re.compile(r"([^\W\d_])\1{2,}")
_SPACE_RE = re.compile(r"\s+")


def _unleet(match: re.Match[str]) -> str:
    return "".join(_LEET[c] for c in match.group(0))


def _unspace(match: re.Match[str]) -> str:
    return re.sub(r"[ .\-_*]", "", match.group(0))


def normalize(text: str) -> str:
    """Return ``text`` with obfuscation undone; case is kept (the tokenizer lower-cases).

    >>> normalize("k i l l  y\u200bourself, f4gg0t!!! sooooo")
    'kill yourself, faggot!!! soo'
    """
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_HOMOGLYPHS)
    # Collapse whitespace before un-spacing, so "k\ri\rl\rl" is un-spaced now
    # rather than on a second call (normalize must be idempotent).
    text = _SPACE_RE.sub(" ", text)
    text = _SPACED_RE.sub(_unspace, text)
    text = _LEET_RE.sub(_unleet, text)
    text = _STRETCH_RE.sub(r"\1\1", text)
    return _SPACE_RE.sub(" ", text).strip()


def benchmark_digest(text: str) -> str:
    """SHA-256 used by ``shared/data/benchmark-exclude.sha256`` (NFKC, lower, collapsed spaces)."""
    canon = _SPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()
