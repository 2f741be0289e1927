"""Build the team-written training examples in ``classifiers/data/written/``.

Public data covers some categories thinly (sexual/minors, graphic violence,
self-harm instructions, explicit sexual text) and rarely supplies the
near-miss negatives that teach the model where a category stops. The team
writes those examples by hand in ``written/src/*.txt``; this script turns
them into one JSONL file per source, expands the few templates written next
to them, and composes long texts in which the harmful part sits in the
middle or at the end (so training on windows of a long text matters).

Everything is seeded and ordered, so ``python -m classifiers.data.write_examples``
rewrites the JSONL files byte for byte. ``--check`` rebuilds in memory and
fails if the files on disk differ.

Source format (one file per output file, ``_pools.txt`` is shared)::

    # comment                                  <- "# " or a lone "#"
    %rows V V2 | web | why these labels        <- header for the lines below
    one example per line (a literal \\n is a line break)

    %template 40 | HR | chat | why             <- 40 draws from patterns x slots
    = you {insult}, {tail}
    +insult
    absolute clown

    %compose 12 | SH SHI | web | why           <- long thread, harm in the middle or end
    harmful reply, one per line

A block runs until the next ``%`` directive (``%end`` just closes it).

``_pools.txt`` holds ``%pool title|user|post`` blocks: the benign thread
titles, user names and posts that ``%compose`` wraps around a reply.

Labels are short codes (see :data:`CODES`) or ``-`` for none; parents are
added with :func:`classifiers.taxonomy.with_parents`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from classifiers.normalize import benchmark_digest, normalize
from classifiers.taxonomy import CATEGORIES, PARENTS, with_parents

HERE = Path(__file__).resolve().parent / "written"
SRC = HERE / "src"
#: Output files, in build order; a duplicate is reported against the earlier file.
STEMS: tuple[str, ...] = (
    "benign_chat",
    "violence_graphic",
    "violence",
    "sexual",
    "sexual_minors",
    "self_harm",
    "hate_harassment",
)
CODES: dict[str, str] = {
    "S": "sexual",
    "S3": "sexual/minors",
    "H": "hate",
    "H2": "hate/threatening",
    "HR": "harassment",
    "HR2": "harassment/threatening",
    "SH": "self-harm",
    "SHI": "self-harm/intent",
    "SHN": "self-harm/instructions",
    "V": "violence",
    "V2": "violence/graphic",
}
REGISTERS = ("chat", "web")
SEED = 20261128
# Long composed texts: the brief asks for 600-2,000 characters.
LONG_MIN, LONG_MAX = 600, 2000
_SLOT_RE = re.compile(r"\{(\w+)\}")
# A slot value that starts with punctuation (", see you soon") follows a space in the pattern.
_SPACE_PUNCT_RE = re.compile(r" +([,.;:!?])")


class Record(TypedDict):
    """One output line: the text, all 11 labels, its register and why it is labelled so."""

    text: str
    labels: dict[str, int]
    register: str
    note: str


@dataclass
class Header:
    """Labels, register and note shared by the lines that follow a header."""

    labels: dict[str, int]
    register: str
    note: str


@dataclass
class Block:
    """A ``%template`` or ``%compose`` section, expanded after parsing."""

    kind: str
    count: int
    header: Header
    patterns: list[str] = field(default_factory=list)
    slots: dict[str, list[str]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def parse_header(spec: str, where: str) -> Header:
    """Parse ``codes | register | note``; raise ``ValueError`` naming ``where``."""
    parts = [p.strip() for p in spec.split("|", 2)]
    if len(parts) != 3:
        raise ValueError(f"{where}: header needs 'codes | register | note', got {spec!r}")
    codes, register, note = parts
    labels: dict[str, int | None] = dict.fromkeys(CATEGORIES, 0)
    for code in codes.split():
        if code == "-":
            continue
        if code not in CODES:
            raise ValueError(f"{where}: unknown label code {code!r}; known: {sorted(CODES)}")
        labels[CODES[code]] = 1
    if register not in REGISTERS:
        raise ValueError(f"{where}: register must be one of {REGISTERS}, got {register!r}")
    filled = with_parents(labels)
    return Header({name: 1 if filled[name] == 1 else 0 for name in CATEGORIES}, register, note)


def parse(path: Path) -> tuple[list[tuple[str, Header]], list[Block]]:
    """Read one source file into plain examples and template/compose blocks."""
    rows: list[tuple[str, Header]] = []
    blocks: list[Block] = []
    header: Header | None = None
    block: Block | None = None
    slot: str | None = None
    for num, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.name}:{num}"
        line = raw.strip()
        if not line or line == "#" or line.startswith("# "):
            continue
        if line.startswith("%") and block is not None:
            # Any directive closes the open block; %end only closes it. Rows after
            # a block need their own %rows header, so none inherit a stale one.
            blocks.append(block)
            block, slot, header = None, None, None
        if line.startswith("%end"):
            continue
        if line.startswith("%pool"):
            name = line.split(None, 1)[1]
            block = Block("pool", 0, Header(dict.fromkeys(CATEGORIES, 0), "web", name))
        elif line.startswith(("%template", "%compose")):
            kind, rest = line[1:].split(None, 1)
            count, spec = rest.split("|", 1)
            block = Block(kind, int(count), parse_header(spec, where))
        elif line.startswith("%rows"):
            header = parse_header(line[5:], where)
        elif line.startswith("%"):
            raise ValueError(f"{where}: unknown directive {line.split()[0]!r}")
        elif block is not None and block.kind == "template":
            if line.startswith("= "):
                block.patterns.append(line[2:])
            elif line.startswith("+"):
                slot = line[1:]
                block.slots[slot] = []
            elif slot is None:
                raise ValueError(f"{where}: slot value before any +slot line")
            else:
                block.slots[slot].append(line)
        elif block is not None:
            block.lines.append(line.replace("\\n", "\n"))
        elif header is None:
            raise ValueError(f"{where}: example before any %rows header")
        else:
            rows.append((line.replace("\\n", "\n"), header))
    if block is not None:
        blocks.append(block)
    return rows, blocks


def expand_template(block: Block, rng: random.Random, taken: set[str]) -> list[str]:
    """Draw ``block.count`` distinct fillings of the block's patterns."""
    for pattern in block.patterns:
        missing = set(_SLOT_RE.findall(pattern)) - set(block.slots)
        if missing:
            raise ValueError(f"template {block.header.note!r}: no slot list for {missing}")
    out: list[str] = []
    for _ in range(block.count * 50):
        if len(out) == block.count:
            break
        pattern = rng.choice(block.patterns)
        text = _SLOT_RE.sub(lambda m: rng.choice(block.slots[m.group(1)]), pattern)
        # One level of nesting: a slot value may name another slot ("order {order} is late").
        # Other braces ("{{user}}" placeholders) are left alone.
        text = _SLOT_RE.sub(
            lambda m: (
                rng.choice(block.slots[m.group(1)]) if m.group(1) in block.slots else m.group(0)
            ),
            text,
        )
        text = _SPACE_PUNCT_RE.sub(r"\1", text)
        key = dedup_key(text)
        if key not in taken:
            taken.add(key)
            out.append(text)
    if len(out) < block.count:
        raise ValueError(f"template {block.header.note!r}: only {len(out)}/{block.count} distinct")
    return out


def compose_thread(harm: str, pools: dict[str, list[str]], rng: random.Random) -> str:
    """Wrap one reply in an off-topic forum thread, in the middle or as the last post.

    Benign posts are added until the page reaches a length drawn between
    :data:`LONG_MIN` and 1,600 characters; a post that would push it past
    :data:`LONG_MAX` is skipped.
    """
    target = rng.randint(LONG_MIN, 1600)
    title = rng.choice(pools["title"])
    users = [u for u in rng.sample(pools["user"], len(pools["user"])) if u not in harm]
    at_end = rng.random() < 0.5

    def page(benign: list[str]) -> str:
        cut = len(benign) if at_end else (len(benign) + 1) // 2
        replies = [*benign[:cut], harm, *benign[cut:]]
        return f"{title}\n\n" + "\n\n".join(
            f"{user}: {reply}" for user, reply in zip(users, replies, strict=False)
        )

    chosen: list[str] = []
    for post in rng.sample(pools["post"], len(pools["post"])):
        if len(page([*chosen, post])) > LONG_MAX:
            continue
        chosen.append(post)
        if len(chosen) >= 2 and len(page(chosen)) >= target:
            return page(chosen)
    if len(chosen) >= 2 and len(page(chosen)) >= LONG_MIN:
        return page(chosen)
    raise ValueError(f"cannot fit a {LONG_MIN}-{LONG_MAX} char thread around {harm[:40]!r}")


def dedup_key(text: str) -> str:
    """Key under which two texts count as the same example."""
    return normalize(text).casefold()


def record(text: str, header: Header, note: str | None = None) -> Record:
    labels = {name: header.labels[name] for name in CATEGORIES}
    return {
        "text": text,
        "labels": labels,
        "register": header.register,
        "note": note or header.note,
    }


def build() -> dict[str, list[Record]]:
    """Return every output file's records, in order, after validation."""
    _, pool_blocks = parse(SRC / "_pools.txt")
    pools = {b.header.note: b.lines for b in pool_blocks if b.kind == "pool"}
    taken: set[str] = set()
    out: dict[str, list[Record]] = {}
    for index, stem in enumerate(STEMS):
        rng = random.Random(SEED + index)
        rows, blocks = parse(SRC / f"{stem}.txt")
        records: list[Record] = []
        for text, header in rows:
            key = dedup_key(text)
            if key in taken:
                raise ValueError(f"{stem}: duplicate example {text[:60]!r}")
            taken.add(key)
            records.append(record(text, header))
        for block in blocks:
            if block.kind == "template":
                texts = expand_template(block, rng, taken)
            else:
                if block.count != len(block.lines):
                    raise ValueError(f"{stem}: %compose {block.count} has {len(block.lines)} lines")
                texts = [compose_thread(harm, pools, rng) for harm in block.lines]
                for text in texts:
                    if dedup_key(text) in taken:
                        raise ValueError(f"{stem}: composed text collides: {text[:60]!r}")
                    taken.add(dedup_key(text))
            records.extend(record(text, block.header) for text in texts)
        out[stem] = records
    for records in out.values():
        for rec in records:
            validate(rec)
    return out


def validate(rec: Record) -> None:
    """Raise ``ValueError`` unless ``rec`` is a well-formed training record."""
    labels = rec["labels"]
    if list(labels) != list(CATEGORIES):
        raise ValueError(f"labels must list {CATEGORIES} in order: {rec}")
    if any(v not in (0, 1) for v in labels.values()):
        raise ValueError(f"labels must be 0/1: {rec}")
    for child, parent in PARENTS.items():
        if labels[child] == 1 and labels[parent] != 1:
            raise ValueError(f"{child} without {parent}: {rec}")
    if rec["register"] not in REGISTERS or not rec["text"].strip():
        raise ValueError(f"bad register or empty text: {rec}")


def render(records: list[Record]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)


def check_exclusions(out: dict[str, list[Record]], path: Path) -> list[str]:
    """Texts whose benchmark digest is on the exclusion list (should be none)."""
    digests = set(path.read_text().split())
    return [
        r["text"] for recs in out.values() for r in recs if benchmark_digest(r["text"]) in digests
    ]


def stats_table(out: dict[str, list[Record]]) -> str:
    """Markdown table of rows, all-zero rows, long rows and positives per category, per file."""
    head = ["file", "rows", "all-0", "long", *CATEGORIES]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    totals = [0] * (len(head) - 1)
    for stem, records in out.items():
        labels = [r["labels"] for r in records]
        cells = [
            len(records),
            sum(not any(lab.values()) for lab in labels),
            sum(len(r["text"]) >= LONG_MIN for r in records),
            *(sum(lab[name] for lab in labels) for name in CATEGORIES),
        ]
        totals = [a + b for a, b in zip(totals, cells, strict=True)]
        lines.append(f"| {stem}.jsonl | " + " | ".join(map(str, cells)) + " |")
    lines.append("| **total** | " + " | ".join(map(str, totals)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if files on disk differ")
    parser.add_argument("--stats", action="store_true", help="also print a markdown count table")
    parser.add_argument(
        "--exclude",
        type=Path,
        default=Path("/work/shared/data/benchmark-exclude.sha256"),
        help="benchmark digest list; skipped when the file is absent",
    )
    args = parser.parse_args(argv)
    out = build()
    if args.exclude.is_file() and (hits := check_exclusions(out, args.exclude)):
        print(
            f"{len(hits)} examples are on the benchmark exclusion list: {hits[:3]}", file=sys.stderr
        )
        return 1
    stale = []
    for stem, records in out.items():
        path = HERE / f"{stem}.jsonl"
        text = render(records)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
        print(f"{stem}.jsonl: {len(records)} rows")
    if args.stats:
        print(stats_table(out))
    if stale:
        print(
            f"out of date: {stale}; run python -m classifiers.data.write_examples", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
