"""The policy: card thresholds by default, a YAML file overrides, the strictest action wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.taxonomy import CATEGORIES
from stream.errors import ConfigError
from stream.policy import ACTIONS, DEFAULT_ACTIONS, Policy, PolicyFile, load_policy

CARD = {c: 0.5 for c in CATEGORIES}


def row(**scores: float) -> list[float]:
    """A score row in CATEGORIES order; keyword names use _ for / and -."""
    named = {k.replace("__", "/").replace("_", "-"): v for k, v in scores.items()}
    return [named.get(c, 0.0) for c in CATEGORIES]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_default_policy_uses_card_thresholds_and_default_actions() -> None:
    card = {c: 0.1 * (i % 9 + 1) for i, c in enumerate(CATEGORIES)}
    policy = load_policy(None, CATEGORIES, card)
    assert policy.thresholds == card
    assert policy.actions == {c: DEFAULT_ACTIONS[c] for c in CATEGORIES}
    assert policy.id == "default@1"


def test_default_actions_are_known_and_cover_the_taxonomy() -> None:
    assert set(CATEGORIES) <= set(DEFAULT_ACTIONS)
    assert set(DEFAULT_ACTIONS.values()) <= set(ACTIONS)
    assert DEFAULT_ACTIONS["sexual/minors"] == "block"
    assert DEFAULT_ACTIONS["harassment"] == "warn"


def test_triggered_at_or_above_threshold() -> None:
    policy = Policy(CATEGORIES, CARD)
    assert policy.triggered(row(hate=0.5, harassment=0.49)) == ["hate"]
    assert policy.triggered(row()) == []
    assert policy.action([]) is None


def test_strictest_action_wins() -> None:
    policy = Policy(CATEGORIES, CARD)
    assert policy.action(["harassment"]) == "warn"
    assert policy.action(["harassment", "hate"]) == "review"
    assert policy.action(["hate", "harassment", "sexual/minors"]) == "block"
    assert policy.action(["sexual/minors", "harassment"]) == "block"


def test_overrides_from_a_yaml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: strict\nversion: 3\n"
        "thresholds: {harassment: 0.7, hate: 0.2}\n"
        "actions: {harassment: block, sexual/minors: review}\n",
    )
    policy = load_policy(path, CATEGORIES, CARD)
    assert policy.id == "strict@3"
    assert policy.thresholds["harassment"] == 0.7
    assert policy.thresholds["hate"] == 0.2
    assert policy.thresholds["violence"] == 0.5  # from the card
    assert policy.actions["harassment"] == "block"
    assert policy.actions["sexual/minors"] == "review"
    assert policy.actions["violence"] == DEFAULT_ACTIONS["violence"]
    assert policy.triggered(row(harassment=0.6, hate=0.25)) == ["hate"]
    assert policy.action(["harassment", "hate"]) == "block"


def test_empty_file_is_the_default_policy(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, ""), CATEGORIES, CARD)
    assert policy.id == "default@1"
    assert policy.thresholds == CARD


def test_model_with_a_subset_of_categories() -> None:
    subset = ("hate", "violence")
    policy = Policy(subset, {"hate": 0.3, "violence": 0.4})
    assert policy.triggered([0.3, 0.39]) == ["hate"]
    with pytest.raises(ConfigError, match="sexual"):
        Policy(subset, {"hate": 0.3, "violence": 0.4}, PolicyFile(thresholds={"sexual": 0.5}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thresholds: {harasment: 0.5}\n", "harasment"),
        ("actions: {hate: ban}\n", "ban"),
        ("thresholds: {hate: 1.5}\n", "1.5"),
        ("thresholds: {hate: 0}\n", "must be in (0, 1]"),
        ("thresholds: {hate: -0.1}\n", "-0.1"),
        ("thresholds: {hate: high}\n", "MODSTREAM_POLICY_FILE"),
        ("colour: red\n", "colour"),
        ("thresholds: [0.5\n", "MODSTREAM_POLICY_FILE"),
    ],
)
def test_bad_policy_files_raise_config_error(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy(write(tmp_path, text), CATEGORIES, CARD)
    assert expected in str(info.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MODSTREAM_POLICY_FILE"):
        load_policy(tmp_path / "absent.yaml", CATEGORIES, CARD)
