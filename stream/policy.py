"""The moderation policy: per-category thresholds and the action each category triggers.

Thresholds default to the model card's (chosen on the validation split);
a policy file can override any of them and choose actions. A flagged result
carries the strictest action among its triggered categories.

Policy file (YAML)::

    name: default
    version: 1
    thresholds: {harassment: 0.7}
    actions: {harassment: warn, sexual/minors: block}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.errors import ConfigError

#: strictest first
ACTIONS = ("block", "review", "warn")

DEFAULT_ACTIONS: dict[str, str] = {
    "sexual": "review",
    "sexual/minors": "block",
    "hate": "review",
    "hate/threatening": "block",
    "harassment": "warn",
    "harassment/threatening": "block",
    "self-harm": "review",
    "self-harm/intent": "review",
    "self-harm/instructions": "block",
    "violence": "review",
    "violence/graphic": "review",
    "illicit": "review",
    "illicit/violent": "block",
}


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    version: int = Field(1, ge=1)
    thresholds: dict[str, float] = {}
    actions: dict[str, str] = {}


class Policy:
    """Decides ``categories``, ``flagged`` and the action from a row of scores."""

    def __init__(
        self,
        categories: Sequence[str],
        card_thresholds: Mapping[str, float],
        spec: PolicyFile | None = None,
    ) -> None:
        spec = spec or PolicyFile()
        for field, mapping in (("thresholds", spec.thresholds), ("actions", spec.actions)):
            unknown = sorted(set(mapping) - set(categories))
            if unknown:
                raise ConfigError(
                    f"policy {field} name categories the model does not score: {unknown}; "
                    f"it scores {list(categories)}"
                )
        bad = {c: a for c, a in spec.actions.items() if a not in ACTIONS}
        if bad:
            raise ConfigError(f"policy actions {bad} are not one of {list(ACTIONS)}")
        out_of_range = {c: t for c, t in spec.thresholds.items() if not 0.0 < t <= 1.0}
        if out_of_range:
            raise ConfigError(f"policy thresholds {out_of_range} must be in (0, 1]")
        self.categories = tuple(categories)
        self.thresholds = {c: float(spec.thresholds.get(c, card_thresholds[c])) for c in categories}
        self.actions = {
            c: spec.actions.get(c, DEFAULT_ACTIONS.get(c, "review")) for c in categories
        }
        self.id = f"{spec.name}@{spec.version}"
        self._threshold_arr = np.asarray(
            [self.thresholds[c] for c in self.categories], dtype=np.float64
        )
        self._nothing_flagged = dict.fromkeys(self.categories, False)
        self._rank = {a: i for i, a in enumerate(ACTIONS)}

    def results(self, scores: np.ndarray) -> list[tuple[list[str], dict[str, Any]]]:
        """Per row of ``scores``: (triggered categories, OpenAI-shaped result).

        The result holds ``flagged``, ``categories`` and ``category_scores``
        (rounded to 6 decimals), as the stream and ``/v1/moderations`` publish it.
        """
        rounded = np.round(scores, 6)
        # one numpy compare for the whole batch
        hits: np.ndarray = np.asarray(rounded >= self._threshold_arr)
        flagged_rows: list[bool] = np.any(hits, axis=1).tolist()
        out = []
        for row, flagged, hit_row in zip(rounded.tolist(), flagged_rows, hits, strict=True):
            if flagged:
                flags = dict(zip(self.categories, hit_row.tolist(), strict=True))
                triggered = [c for c, hit in flags.items() if hit]
            else:  # most messages: no per-category work
                flags, triggered = dict(self._nothing_flagged), []
            out.append(
                (
                    triggered,
                    {
                        "flagged": flagged,
                        "categories": flags,
                        "category_scores": dict(zip(self.categories, row, strict=True)),
                    },
                )
            )
        return out

    def triggered(self, scores: Sequence[float]) -> list[str]:
        return [c for c, s in zip(self.categories, scores, strict=True) if s >= self.thresholds[c]]

    def action(self, triggered: Sequence[str]) -> str | None:
        if not triggered:
            return None
        return min((self.actions[c] for c in triggered), key=self._rank.__getitem__)


def load_policy(
    path: Path | None, categories: Sequence[str], card_thresholds: Mapping[str, float]
) -> Policy:
    """The default policy, or the one in ``path``; a bad file raises :class:`ConfigError`."""
    if path is None:
        return Policy(categories, card_thresholds)
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
        spec = PolicyFile.model_validate(data)
    except OSError as exc:
        raise ConfigError(
            f"cannot read policy_file (MODSTREAM_POLICY_FILE) {str(path)!r}: {exc}"
        ) from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(
            f"policy_file (MODSTREAM_POLICY_FILE) {str(path)!r} is invalid: {exc}"
        ) from exc
    return Policy(categories, card_thresholds, spec)
