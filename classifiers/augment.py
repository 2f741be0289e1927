"""Chat and web wrappers around training texts, so they stop moving scores.

Real traffic arrives with speaker names, links, quote markers and media
placeholders around the words that matter; none of them changes what a
text means, but a model that never saw them in training scores them: on
wrapped copies of 3,000 validation texts, 1.3.0 lost 0.01-0.04 "any
category" AUPRC and 0.02-0.11 macro AUPRC (HTML, BBCode, a URL tail, a
speaker name, a forum header and footer). A seeded share of the training texts gets one wrapper, drawn
without looking at the labels, so no wrapper can become a cue for a label.
Validation texts are never wrapped. What survives :func:`normalize` is
what is worth teaching: markup the normaliser strips is not drawn here.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

T = TypeVar("T")

_SPEAKERS = (
    "[NAME]", "[USER]", "{{user}}", "<USER>", "@user", "@[NAME]", "Guest_4821", "anon",
    "user123", "mod_kay", "xXgamerXx", "[deleted]", "Anonymous", "ppl_person",
)  # fmt: skip
_SPEAKER_FORMS = ("{s}: ", "{s} said: ", "<{s}> ", "[{s}] ", "{s} wrote:\n", "{s} ", "@{s} ")
_HOSTS = (
    "example.com", "imgur.com", "youtube.com", "reddit.com", "discord.gg", "t.co",
    "twitter.com", "tiktok.com", "news.example.org", "forum.example.net",
)  # fmt: skip
_PLACEHOLDERS = (
    "[image]", "[image attached]", "<media omitted>", "[link]", "[deleted]", "(edited)",
    "[video]", "[gif]", "[removed]", "[URL]", "<URL>", "[EMAIL]", "[PHONE]", "sent from my phone",
)  # fmt: skip


def _speaker(text: str, rng: random.Random) -> str:
    return rng.choice(_SPEAKER_FORMS).format(s=rng.choice(_SPEAKERS)) + text


def _link(text: str, rng: random.Random) -> str:
    path = "/".join(
        rng.choice(("p", "watch", "r", "status", "a", "x9Fk2", "2024")) for _ in range(2)
    )
    url = f"https://{rng.choice(_HOSTS)}/{path}"
    return f"{url} {text}" if rng.random() < 0.3 else f"{text} {url}"


def _quote(text: str, rng: random.Random) -> str:
    quoted = "\n".join(f"> {line}" for line in text.splitlines() or [text])
    if rng.random() < 0.5:
        return quoted
    return f"{rng.choice(_SPEAKERS)} wrote:\n{quoted}"


def _placeholder(text: str, rng: random.Random) -> str:
    mark = rng.choice(_PLACEHOLDERS)
    return f"{mark}\n{text}" if rng.random() < 0.5 else f"{text}\n{mark}"


WRAPPERS: dict[str, Callable[[str, random.Random], str]] = {
    "speaker": _speaker,
    "link": _link,
    "quote": _quote,
    "placeholder": _placeholder,
}


def wrap(text: str, rng: random.Random) -> str:
    """``text`` inside one wrapper drawn from :data:`WRAPPERS`."""
    return WRAPPERS[rng.choice(sorted(WRAPPERS))](text, rng)


def wrap_some(examples: Sequence[T], fraction: float, seed: int) -> list[T]:
    """A copy of ``examples`` in which a seeded ``fraction`` of them (by count) is wrapped.

    The examples are dataclasses with a ``text`` field; which ones are
    wrapped depends only on the seed and their order, never on labels.
    """
    rng = random.Random(f"wrap-{seed}")
    chosen = set(rng.sample(range(len(examples)), round(fraction * len(examples))))
    return [
        dataclasses.replace(cast(Any, ex), text=wrap(cast(Any, ex).text, rng))
        if i in chosen
        else ex
        for i, ex in enumerate(examples)
    ]
