"""Text normalisation against obfuscation and markup, shared by training and serving.

The model must see the same string in training and in production, so both
call :func:`normalize` and nothing else. It undoes the cheap tricks people
use to slip past filters: zero-width characters, homoglyphs from other
scripts, leetspeak inside words, spaced-out letters and stretched letters.
It also strips the markup that web and chat text arrives wrapped in (HTML
entities and tags, BBCode pairs, Markdown links, URLs down to their host),
which changes nothing a text means but moved 1.3.0's scores.

Every pattern is bounded, so hostile input (a 100,000-character run of
``<`` or ``[``) costs linear time. :data:`NORMALIZER_ID` names this version:
a model card records the normaliser its model was trained behind, and
serving refuses a model trained behind another one.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from html.entities import html5 as _HTML5_ENTITIES

#: Recorded in model cards; bump it whenever :func:`normalize`'s output changes.
NORMALIZER_ID = "classifiers.normalize.normalize@2"

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

# ---------------------------------------------------------------- markup

# Only entities with their semicolon: "&nothing" and "AT&T;" style text stay
# unless the name is a real entity (html.unescape leaves unknown ones alone).
_ENTITY_RE = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")

# Real tag names only, and attributes only as name=value, so "<USER>",
# "<3" and "<find you and hurt you>" are text, not tags.
_INLINE_TAGS = "a|abbr|b|big|cite|code|del|em|font|i|ins|kbd|mark|q|s|samp|small|span|strike|strong|sub|sup|tt|u"
_BLOCK_TAGS = (
    "address|article|aside|blockquote|body|br|caption|center|dd|div|dl|dt|figcaption|figure|"
    "footer|h[1-6]|head|header|hr|html|img|li|main|nav|ol|p|pre|section|table|tbody|td|tfoot|"
    "th|thead|title|tr|ul"
)
_ATTRS = r"(?:\s+[A-Za-z_:][-A-Za-z0-9_:.]{0,40}\s*=\s*(?:\"[^\"<>]{0,500}\"|'[^'<>]{0,500}'|[^\s\"'<>=`]{1,500})){0,20}"
_INLINE_TAG_RE = re.compile(rf"<(/?)({_INLINE_TAGS})({_ATTRS})\s*/?>", re.IGNORECASE)
_BLOCK_TAG_RE = re.compile(rf"</?(?:{_BLOCK_TAGS}){_ATTRS}\s*/?>", re.IGNORECASE)
_COMMENT_RE = re.compile(r"<!--[^<>]{0,2000}?-->")

# BBCode tags are stripped only when the text holds both an opening and a
# closing tag of that name: "a[i] = b[i]" and a lone "[URL]" stay.
_BB_INLINE = {"b", "i", "u", "s", "color", "size", "font", "url", "spoiler", "email"}
_BB_TAG_RE = re.compile(
    r"\[(/?)(b|i|u|s|color|size|font|url|spoiler|email|quote|code|img|center|list|indent)"
    r"(?:=[^\[\]\n]{0,200})?\]",
    re.IGNORECASE,
)

# [text](link) keeps its text; ![alt](link) its alt text. The link must look
# like one, so code such as "arr[i](x)" stays.
_MD_LINK_RE = re.compile(
    r"!?\[([^\[\]\n]{0,300})\]\(\s*<?(?:https?://|www\.|/|#|mailto:)[^\s()<>]{0,2000}>?\s*\)",
    re.IGNORECASE,
)

# A URL keeps its host and the words of its path ("https://ex.com/r/8x7f2/
# some_thread?utm=x" -> "ex.com some thread"): slugs are words; ids, single
# letters and query strings are noise. It stops at a comma, quote or bracket, so
# "https://x.co/a,kill you" keeps the words after it.
_URL_RE = re.compile(
    r"(?<![\w@.])(?:https?://(?:www\.)?|www\.)(?:[^\s/@:]{1,64}(?::[^\s/@]{0,64})?@)?"
    r"([A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,24})(?::\d{1,5})?"
    r"(/[-A-Za-z0-9._~%/=&+:@!$*;]{0,2000})?(?:[?#][-A-Za-z0-9._~%/?#=&+:@!$*;]{0,2000})?",
    re.IGNORECASE,
)
_PATH_SPLIT_RE = re.compile(r"[-/_.~%=&+:@!$*;]+")
_WORD_RE = re.compile(r"[^\W\d_]{2,30}")
_FILE_EXTENSIONS = frozenset(
    {"html", "htm", "php", "asp", "aspx", "png", "jpg", "jpeg", "gif", "webp"}
)
_MARKUP_HINT_RE = re.compile(r"[&<\[]|://|www\.", re.IGNORECASE)


def _unescape(match: re.Match[str]) -> str:
    entity = match.group(0)
    if entity[1] != "#" and entity[1:] not in _HTML5_ENTITIES:
        return entity  # html.unescape would decode a prefix: "&amplified;" -> "&lified;"
    return html.unescape(entity)


def _strip_bbcode(text: str) -> str:
    tokens = list(_BB_TAG_RE.finditer(text))
    if not tokens:
        return text
    opened = {m.group(2).lower() for m in tokens if not m.group(1)}
    closed = {m.group(2).lower() for m in tokens if m.group(1)}
    paired = opened & closed
    if not paired:
        return text
    out: list[str] = []
    last = 0
    for m in tokens:
        name = m.group(2).lower()
        if name in paired:
            out.append(text[last : m.start()])
            out.append("" if name in _BB_INLINE else " ")
            last = m.end()
    out.append(text[last:])
    return "".join(out)


def _url_words(match: re.Match[str]) -> str:
    words = [
        w
        for w in _PATH_SPLIT_RE.split(match.group(2) or "")
        if _WORD_RE.fullmatch(w) and w.lower() not in _FILE_EXTENSIONS
    ]
    return " ".join(["", match.group(1).lower(), *words, ""])


def _strip_inline_tags(text: str) -> str:
    # Only names that are closed somewhere: "f<b></b>uck" is markup, "<i> hate you" is not.
    closed = {m.group(2).lower() for m in _INLINE_TAG_RE.finditer(text) if m.group(1)}
    if not closed:
        return text
    return _INLINE_TAG_RE.sub(lambda m: "" if m.group(2).lower() in closed else m.group(0), text)


def strip_markup(text: str) -> str:
    """Remove HTML entities and tags, BBCode pairs, Markdown links and URL noise.

    Inline tags vanish as a browser renders them ("f<b></b>uck" -> "fuck",
    so "hello<b>world</b>" -> "helloworld"); block tags leave a space.

    >>> strip_markup("<p>see&nbsp;<a href='https://ex.com/x?y=1'>this</a></p>")
    ' see\\xa0this '
    """
    if not _MARKUP_HINT_RE.search(text):
        return text
    text = _ENTITY_RE.sub(_unescape, text)
    text = _COMMENT_RE.sub(" ", text)
    text = _BLOCK_TAG_RE.sub(" ", text)
    text = _strip_inline_tags(text)
    text = _strip_bbcode(text)
    text = _MD_LINK_RE.sub(r"\1", text)
    return _URL_RE.sub(_url_words, text)


# ---------------------------------------------------------------- the pipeline


def _unleet(match: re.Match[str]) -> str:
    return "".join(_LEET[c] for c in match.group(0))


def _unspace(match: re.Match[str]) -> str:
    return re.sub(r"[ .\-_*]", "", match.group(0))


def _canonical_characters(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_HOMOGLYPHS)


def _one_pass(text: str) -> str:
    text = _canonical_characters(text)
    stripped = strip_markup(text)
    if stripped != text:  # entities can decode to homoglyphs and zero-width characters
        text = _canonical_characters(stripped)
    # Collapse whitespace before un-spacing, so "k\ri\rl\rl" is un-spaced now
    # rather than on a second call (normalize must be idempotent).
    text = _SPACE_RE.sub(" ", text)
    text = _SPACED_RE.sub(_unspace, text)
    text = _LEET_RE.sub(_unleet, text)
    text = _STRETCH_RE.sub(r"\1\1", text)
    return _SPACE_RE.sub(" ", text).strip()


#: Passes at most: unescaping can reveal markup ("&lt;b&gt;"), and un-leeting an entity
#: ("&qu0t;"), so text with markup hints repeats until nothing changes.
_MAX_PASSES = 6


def normalize(text: str) -> str:
    """Return ``text`` with obfuscation and markup undone; case is kept (the tokenizer lower-cases).

    >>> normalize("k i l l  y\u200bourself, f4gg0t!!! sooooo")
    'kill yourself, faggot!!! soo'
    >>> normalize("<p>you&#39;re a <b>c.l.o.w.n</b></p> https://ex.com/u/42/clown_pics")
    "you're a clown ex.com clown pics"
    """
    out = _one_pass(text)
    for _ in range(_MAX_PASSES - 1):
        if not _MARKUP_HINT_RE.search(out):
            break
        again = _one_pass(out)
        if again == out:
            break
        out = again
    return out


def benchmark_digest(text: str) -> str:
    """SHA-256 used by ``shared/data/benchmark-exclude.sha256`` (NFKC, lower, collapsed spaces)."""
    canon = _SPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()
