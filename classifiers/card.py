"""``model_card.json``: what a model directory claims about itself, validated on load.

The card is the contract between training and serving: output order of the
categories, thresholds chosen on the validation split, the window the model
was trained on, the files of each variant, and where the data came from.
Loading reads only JSON (never pickle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from classifiers.normalize import NORMALIZER_ID
from classifiers.taxonomy import CATEGORIES


class ModelLoadError(Exception):
    """The model directory is missing, corrupt or inconsistent with its card."""


class DataSource(BaseModel):
    name: str
    licence: str
    origin: str = ""
    rows: int = 0


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    version: str
    categories: tuple[str, ...]
    thresholds: dict[str, float]
    max_tokens: int = Field(128, ge=8, le=512)
    window_stride: int = Field(96, ge=1)
    variants: dict[str, str] = Field(description="variant name (int8, fp16, fp32) -> ONNX file")
    tokenizer: str = "tokenizer.json"
    data_sources: list[DataSource] = []
    evaluation: dict[str, Any] = {}
    normalizer: str | None = Field(
        None, description="the normaliser the model was trained behind (classifiers.normalize)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"categories {unknown} are not in the taxonomy")
        missing = [c for c in self.categories if c not in self.thresholds]
        if missing:
            raise ValueError(f"thresholds missing for {missing}")
        if self.window_stride > self.max_tokens - 2:
            raise ValueError("window_stride must leave room for [CLS] and [SEP] in max_tokens")
        if self.normalizer is not None and self.normalizer != NORMALIZER_ID:
            raise ValueError(
                f"the model was trained behind {self.normalizer}, but this modstream "
                f"serves {NORMALIZER_ID}: its scores would be off; use a model trained "
                "with this version"
            )
        return self

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"


def load_card(model_dir: Path) -> ModelCard:
    """Read and validate ``model_dir/model_card.json``.

    Raises:
        ModelLoadError: naming the file and what is wrong with it.
    """
    path = Path(model_dir) / "model_card.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelLoadError(f"no model card at {path} (check MODSTREAM_MODEL_DIR)") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model card {path} is unreadable: {exc}") from exc
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "card"
        raise ModelLoadError(f"model card {path} is invalid: {where}: {first['msg']}") from exc
