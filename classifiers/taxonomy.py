"""OpenAI's moderation category names, and the parent each sub-category implies.

See ``shared/TAXONOMY.md`` for what each label means. Output order of the
default model follows :data:`CATEGORIES`; a model card may declare a subset.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "sexual",
    "sexual/minors",
    "hate",
    "hate/threatening",
    "harassment",
    "harassment/threatening",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "violence",
    "violence/graphic",
)

#: child -> parent: a positive child label implies a positive parent label.
PARENTS: dict[str, str] = {
    "sexual/minors": "sexual",
    "hate/threatening": "hate",
    "harassment/threatening": "harassment",
    "self-harm/intent": "self-harm",
    "self-harm/instructions": "self-harm",
    "violence/graphic": "violence",
}


def with_parents(labels: dict[str, int | None]) -> dict[str, int | None]:
    """Return ``labels`` with every positive child's parent set positive too."""
    out = dict(labels)
    for child, parent in PARENTS.items():
        if out.get(child) == 1:
            out[parent] = 1
    return out
