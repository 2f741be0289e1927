"""model_card.json: validated on load, and every problem is a ModelLoadError that names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from classifiers.card import ModelCard, ModelLoadError, load_card
from classifiers.normalize import NORMALIZER_ID
from classifiers.taxonomy import CATEGORIES


def card(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "test-model",
        "version": "1.2.3",
        "categories": list(CATEGORIES),
        "thresholds": dict.fromkeys(CATEGORIES, 0.5),
        "variants": {"fp32": "model.fp32.onnx"},
    }
    data.update(changes)
    return data


def write(tmp_path: Path, data: Any) -> Path:
    text = data if isinstance(data, str) else json.dumps(data)
    (tmp_path / "model_card.json").write_text(text)
    return tmp_path


def load_error(model_dir: Path) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_card(model_dir)
    return str(info.value)


def test_valid_card_with_defaults(tmp_path: Path) -> None:
    c = load_card(write(tmp_path, card()))
    assert c.model_id == "test-model@1.2.3"
    assert c.categories == CATEGORIES
    assert (c.max_tokens, c.window_stride, c.tokenizer) == (128, 96, "tokenizer.json")


def test_extra_keys_are_kept(tmp_path: Path) -> None:
    c = load_card(write(tmp_path, card(training={"epochs": 3})))
    assert c.model_extra == {"training": {"epochs": 3}}


def test_missing_card_names_the_path_and_the_setting(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "model_card.json") in message
    assert "MODSTREAM_MODEL_DIR" in message


def test_invalid_json(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "{not json"))
    assert "model_card.json" in message and "unreadable" in message


def test_missing_thresholds(tmp_path: Path) -> None:
    thresholds = dict.fromkeys(CATEGORIES, 0.5)
    del thresholds["hate"], thresholds["violence"]
    message = load_error(write(tmp_path, card(thresholds=thresholds)))
    assert "thresholds missing" in message
    assert "hate" in message and "violence" in message


def test_missing_required_key(tmp_path: Path) -> None:
    data = card()
    del data["thresholds"]
    assert "thresholds" in load_error(write(tmp_path, data))


def test_unknown_category(tmp_path: Path) -> None:
    data = card(categories=["hate", "spam"], thresholds={"hate": 0.5, "spam": 0.5})
    message = load_error(write(tmp_path, data))
    assert "spam" in message and "taxonomy" in message


def test_window_must_leave_room_for_special_tokens(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, card(max_tokens=64, window_stride=63)))
    assert "window_stride" in message


def test_card_is_not_a_mapping(tmp_path: Path) -> None:
    assert "invalid" in load_error(write(tmp_path, "[1, 2]"))


def test_the_model_under_test_has_a_consistent_card(model_dir: Path) -> None:
    c = load_card(model_dir)
    assert set(c.categories) <= set(CATEGORIES)
    assert all(0.0 < c.thresholds[k] <= 1.0 for k in c.categories)
    for name in c.variants.values():
        assert (model_dir / name).is_file(), name
    assert (model_dir / c.tokenizer).is_file()
    assert isinstance(c, ModelCard)


def test_card_records_the_normaliser_and_refuses_another(tmp_path: Path) -> None:
    assert load_card(write(tmp_path, card(normalizer=NORMALIZER_ID))).normalizer == NORMALIZER_ID
    message = load_error(write(tmp_path, card(normalizer="classifiers.normalize.normalize@1")))
    assert "normalize@1" in message and NORMALIZER_ID in message


def test_the_bundled_model_was_trained_behind_the_served_normaliser() -> None:
    from classifiers.runtime import DEFAULT_MODEL_DIR

    assert load_card(DEFAULT_MODEL_DIR).normalizer == NORMALIZER_ID
