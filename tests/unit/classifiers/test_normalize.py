"""normalize() undoes cheap obfuscation, leaves plain text alone; benchmark_digest is SOURCES.md."""

from __future__ import annotations

import hashlib
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.normalize import benchmark_digest, normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # zero-width and soft hyphen characters
        ("k\u200bi\u200cl\u200dl", "kill"),
        ("y\ufeffou \u2060suck", "you suck"),
        ("ha\u00adte", "hate"),
        # homoglyphs (Cyrillic, Greek) and full-width letters (NFKC)
        ("\u0440\u0435rson \u0430tt\u0430\u0441k", "person attack"),
        ("\u03b9\u03bfl\u03b5nce", "iolence"),  # Greek iota, omicron, epsilon
        ("\uff2b\uff49\uff4c\uff4c", "Kill"),
        # leetspeak inside words
        ("k1ll y0u", "kill you"),
        ("f4gg0t", "faggot"),
        ("b!tch", "bitch"),
        ("a$$hole", "asshole"),
        ("h@te", "hate"),
        ("l33t", "leet"),
        # spaced-out letters, with one repeated separator
        ("k i l l you", "kill you"),
        ("h.u.r.t", "hurt"),
        ("d-i-e", "d-i-e"),  # three letters are not enough
        ("i h.u.r.t you", "i hurt you"),
        ("s*l*u*t", "slut"),
        # stretched letters keep two
        ("sooooo baaaad", "soo baad"),
        ("noooo", "noo"),
        # whitespace collapsed and trimmed
        ("  a \n\t b  ", "a b"),
    ],
)
def test_obfuscation_is_undone(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "in 2024 it costs $5 at 5pm",
        "call 555-0134 or 1-800-FLOWERS",
        "3.14 and 1337 and 0.5%",
        "1st place, 2nd, 3rd",
        "room 101",
        "hello!!! wow!",
        "e-mail me",
        "x @ y",
        "ok",
        "Kill",  # case is kept: the tokenizer lower-cases
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert normalize(text) == text


def test_docstring_example() -> None:
    assert normalize("k i l l  y\u200bourself, f4gg0t!!! sooooo") == "kill yourself, faggot!!! soo"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_normalize_is_idempotent_and_total(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip()


def sources_md_digest(text: str) -> str:
    """SOURCES.md: sha256 of NFKC, lower-cased, whitespace runs -> one space, stripped."""
    canon = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(
    "text",
    [
        "Hello World",
        "  HELLO \n\t world  ",
        "\uff28\uff45\uff4c\uff4c\uff4f",
        "caf\u00e9",
        "a\u00a0b",
        "K1LL",
    ],
)
def test_benchmark_digest_matches_the_sources_definition(text: str) -> None:
    assert benchmark_digest(text) == sources_md_digest(text)


def test_benchmark_digest_is_not_the_model_normalisation() -> None:
    # The exclusion list was made without de-obfuscation: "k1ll" and "kill" differ.
    assert benchmark_digest("k1ll") != benchmark_digest("kill")
    assert benchmark_digest("Hello  world") == benchmark_digest("hello world")
    assert len(benchmark_digest("x")) == 64


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_benchmark_digest_property(text: str) -> None:
    assert benchmark_digest(text) == sources_md_digest(text)


def test_letters_spaced_by_other_whitespace_are_joined_in_one_call() -> None:
    # Found by the property test above: "\r" and NEL became spaces only after
    # un-spacing ran, so a second call changed the text again.
    assert normalize("A\rA\rA\x85A") == "AA"
    assert normalize("k\ti\tl\tl") == "kill"


# -- markup (normalize@2) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # HTML entities, only with their semicolon
        ("you&#39;re &amp; me", "you're & me"),
        ("&lt;3 &quot;hi&quot;", '<3 "hi"'),
        ("caf&eacute; &#x41;", "café A"),
        # tags: inline ones vanish, block ones leave a space
        ("f<b></b>uck", "fuck"),
        ("<p>hello</p><p>world</p>", "hello world"),
        ("line one<br>line two<br/>three", "line one line two three"),
        ('<a href="https://ex.com/x">click</a> here', "click here"),
        ("<div class='c' id=x>hi <span style=\"color:red\">there</span></div>", "hi there"),
        ("<!-- hidden -->shown", "shown"),
        ("<img src='a.png' alt='x'>nice pic", "nice pic"),
        # escaped markup is unescaped, then stripped
        ("&lt;b&gt;bold&lt;/b&gt;", "bold"),
        # BBCode open/close pairs
        ("[b]die[/b] already", "die already"),
        ("[quote=anon]you are trash[/quote] lol", "you are trash lol"),
        ("[url=https://ex.com]my site[/url]", "my site"),
        # Markdown links and images keep their text
        ("check [this](https://ex.com/a/b) out", "check this out"),
        ("![a cat](https://img.ex.com/c.png)", "a cat"),
        # URLs keep their host
        ("watch https://www.youtube.com/watch?v=abc123 now", "watch youtube.com watch now"),
        ("see www.example.org/ab/cd?c=d#e", "see example.org ab cd"),
        ("https://x.com/a,kill yourself", "x.com ,kill yourself"),
        ("HTTPS://EX.COM/PATH", "ex.com PATH"),
        # a URL's path keeps its words (a slur in a slug is still a slur), not its ids
        ("https://x.co/kill/yourself/now", "x.co kill yourself now"),
        (
            "https://ex.com/r/comments/8x7f2/some_thread_title/?utm_source=share",
            "ex.com comments some thread title",
        ),
        ("https://img.ex.com/cute-cat.png", "img.ex.com cute cat"),
        # entities that decode to homoglyphs, full-width or invisible characters
        ("&#1089;unt", "cunt"),
        ("&#xFF4B;ill yourself", "kill yourself"),
        ("f&shy;uck f&#8203;uck", "fuck fuck"),
    ],
)
def test_markup_is_stripped(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<find you and hurt you>",  # not a tag name
        "<go kill yourself now>",
        "<i hate you>",  # a tag name, but attributes are name=value only
        "<USER> hi",  # placeholders stay: augmentation teaches the model to ignore them
        "[NAME]: hello",
        "[URL]",
        "a[i] = b[i]",  # no closing [/i]
        "i <3 u",
        "a < b > c",
        "AT&T and &nothing",
        "R&D;",  # not an entity
        "[b] alone",
        "version 2.0 of foo.bar",
        "choose <a> or <b>",  # inline tags count only when closed somewhere
        "<i> hate you",
        "call arr[i](x)",  # a Markdown link's target must look like a link
        "&amplified; &notice;",  # no decoding of an entity name's prefix
        "file.txt, e.g. 1.2.3 and https alone",
    ],
)
def test_markup_look_alikes_stay(text: str) -> None:
    assert normalize(text) == text


_MARKUP_PIECES = [
    *"<>/[]()&;#:.=\"' abiuqotl013@!$ptsw\n",
    *("&lt;", "&gt;", "&amp;", "<b>", "</b>", "[b]", "[/b]", "https://", "www."),
    *("&#39;", "<p>", "&quot;", "\u200b", "&qu0t;", "](", "<!--", "-->"),
]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_MARKUP_PIECES), max_size=25).map("".join))
def test_normalize_is_idempotent_on_markup(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "<" * 100_000,
        "[" * 100_000,
        "&" * 100_000,
        "<b " + "x=1 " * 25_000,
        "[b]" * 33_000 + "[/b]",
        "[a](" * 25_000,
        "https://" + "a." * 50_000,
        "<!--" * 25_000,
    ],
    ids=["lt", "bracket", "amp", "attrs", "bbcode", "mdlink", "url", "comment"],
)
def test_hostile_markup_is_linear(text: str) -> None:
    # Not a speed claim: a quadratic pattern takes minutes on these (70 s seen
    # for "[" * 100k with an unbounded one); linear ones take milliseconds.
    started = time.monotonic()
    normalize(text)
    assert time.monotonic() - started < 5.0
