"""The taxonomy: OpenAI's category names in output order, and parent implication."""

from __future__ import annotations

from classifiers.taxonomy import CATEGORIES, PARENTS, with_parents


def test_openai_category_names_in_order() -> None:
    assert CATEGORIES == (
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


def test_every_sub_category_has_its_parent() -> None:
    children = {c for c in CATEGORIES if "/" in c}
    assert set(PARENTS) == children
    for child, parent in PARENTS.items():
        assert parent == child.split("/")[0]
        assert parent in CATEGORIES


def test_with_parents_sets_positive_parents_only() -> None:
    labels: dict[str, int | None] = {"hate/threatening": 1, "hate": 0, "self-harm/intent": 0}
    out = with_parents(labels)
    assert out["hate"] == 1
    assert "self-harm" not in out  # a negative child implies nothing
    assert labels["hate"] == 0  # input untouched
    assert with_parents({"violence/graphic": None}) == {"violence/graphic": None}
