"""Training pieces: config validation, the masked loss, window labelling and batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from classifiers import train as train_module  # noqa: E402
from classifiers.dataset import Example  # noqa: E402
from classifiers.modeling import base_model_dir, build_from_config, keep_first_layers  # noqa: E402
from classifiers.normalize import NORMALIZER_ID  # noqa: E402
from classifiers.runtime import OnnxClassifier  # noqa: E402
from classifiers.taxonomy import CATEGORIES  # noqa: E402
from classifiers.train import (  # noqa: E402
    BASE_LAYERS,
    ConfigError,
    Doc,
    any_category_bce,
    cpu_has_amx_bf16,
    distill_loss,
    doc_logits,
    ensure_teacher,
    fit,
    label_arrays,
    linear_schedule,
    load_config,
    make_docs,
    masked_bce,
    plan_batches,
    pos_weights,
    resolve_precision,
    spaced_subset,
    split_data,
    steps_within_budget,
    teacher_soft_targets,
)
from classifiers.windows import load_tokenizer  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[3] / "classifiers" / "configs"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(base_model_dir() / "tokenizer.json")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("name", ["default.yaml", "teacher.yaml", "smoke.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert cfg.model.stride <= cfg.model.max_tokens - 2


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("train:\n  lr: -1\n", "train.lr"),
        ("train:\n  batch_size: zero\n", "train.batch_size"),
        ("train:\n  lrr: 0.1\n", "train.lrr"),
        ("data:\n  val_fraction: 0.9\n", "data.val_fraction"),
        ("model:\n  window_labels: mean\n", "model.window_labels"),
        ("train:\n  precision: fp16\n", "train.precision"),
        ("train:\n  any_weight: -0.5\n", "train.any_weight"),
        ("seed: 1\nepochs: 3\n", "epochs"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, yaml_text))
    assert field in str(info.value)
    assert "cfg.yaml" in str(info.value)


def test_config_cross_field_check_names_the_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model: .*stride \(127\)"):
        load_config(_write(tmp_path, "model:\n  max_tokens: 128\n  stride: 127\n"))


def test_config_teacher_init_needs_a_teacher_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="teacher_run"):
        load_config(_write(tmp_path, "model:\n  init: teacher\n"))


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "model:\n  num_layers: 4\noutput:\n  int8_recipe: static\n"
            "  int8_fp32_ffn_layers: [0, 4]\n",
            r"int8_fp32_ffn_layers \[0, 4\]: the model has 4 layers \(0-3\)",
        ),
        (  # no num_layers: all of the base encoder's layers
            "output:\n  int8_recipe: static\n  int8_fp32_ffn_layers: [6]\n",
            r"the model has 6 layers \(0-5\)",
        ),
        (  # only the static recipe can keep nodes fp32; others would ignore it
            "output:\n  int8_recipe: quantize_only\n  int8_fp32_ffn_layers: [0]\n",
            r"'static' only \(got 'quantize_only'\)",
        ),
        ("output:\n  int8_fp32_ffn_layers: [-1]\n", r"output\.int8_fp32_ffn_layers"),
    ],
)
def test_config_fp32_ffn_layers_are_checked_before_training(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, yaml_text))


def test_config_fp32_ffn_layers_are_sorted_and_unique(tmp_path: Path) -> None:
    text = "output:\n  int8_recipe: static\n  int8_fp32_ffn_layers: [2, 0, 2]\n"
    assert load_config(_write(tmp_path, text)).output.int8_fp32_ffn_layers == [0, 2]


def test_base_layers_match_the_base_encoder() -> None:
    config = json.loads((base_model_dir() / "config.json").read_text())
    assert config["num_hidden_layers"] == BASE_LAYERS


def test_a_teacher_run_without_its_card_is_not_finished(tmp_path: Path) -> None:
    # an export that died after training leaves the int8 graph and checkpoint
    # but no card; the student must not score with it
    run_dir = tmp_path / "teacher"
    (run_dir / "checkpoint").mkdir(parents=True)
    (run_dir / "model.int8.onnx").write_bytes(b"")
    cfg = load_config(_write(tmp_path, f"distill:\n  teacher_run: {run_dir}\n"))
    with pytest.raises(FileNotFoundError, match="model_card.json"):
        ensure_teacher(cfg)
    (run_dir / "model_card.json").write_text(json.dumps({"normalizer": NORMALIZER_ID}))
    assert ensure_teacher(cfg) == run_dir


def test_a_teacher_trained_behind_another_normaliser_is_refused(tmp_path: Path) -> None:
    # its soft targets would score strings the student never sees
    run_dir = tmp_path / "teacher"
    (run_dir / "checkpoint").mkdir(parents=True)
    (run_dir / "model.int8.onnx").write_bytes(b"")
    (run_dir / "model_card.json").write_text(
        json.dumps({"normalizer": "classifiers.normalize.normalize@1"})
    )
    cfg = load_config(_write(tmp_path, f"distill:\n  teacher_run: {run_dir}\n"))
    with pytest.raises(ValueError, match="normalize@1"):
        ensure_teacher(cfg)


def test_wrapping_touches_training_texts_only(tmp_path: Path) -> None:
    def examples(n: int) -> list[Example]:
        return [Example(f"text number {i}", {"hate": i % 2}, "s", "MIT") for i in range(n)]

    cfg = load_config(_write(tmp_path, "data:\n  wrap_fraction: 0.5\n"))
    train, val = split_data(cfg, examples(200))
    plain_train, plain_val = split_data(
        load_config(_write(tmp_path, "data:\n  wrap_fraction: 0.0\n")), examples(200)
    )
    assert val == plain_val
    changed = [a for a, b in zip(train, plain_train, strict=True) if a.text != b.text]
    assert len(changed) == round(0.5 * len(train))
    for a, b in zip(train, plain_train, strict=True):
        assert b.text in a.text and a.labels == b.labels


def test_a_teacher_and_its_student_read_the_sources_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classifiers import dataset

    calls: list[object] = []
    monkeypatch.setattr(dataset, "collect", lambda *a, **k: calls.append((a, k)) or object())
    train_module._collect_once.cache_clear()
    exclude = tmp_path / "exclude.sha256"
    exclude.write_text("")
    data = f"data:\n  exclude_digests: {exclude}\n  raw_dir: {tmp_path}\n"
    teacher = load_config(_write(tmp_path, data + "seed: 1\ntrain:\n  epochs: 0.75\n"))
    student = load_config(_write(tmp_path, data + "seed: 2\nmodel:\n  num_layers: 4\n"))
    other = load_config(_write(tmp_path, data + "  include: [written]\n"))
    try:
        assert train_module.build_data(teacher) is train_module.build_data(student)
        assert len(calls) == 1
        train_module.build_data(other)  # other inputs: read again
        assert len(calls) == 2
    finally:
        train_module._collect_once.cache_clear()


def test_split_seed_keeps_the_split_when_the_training_seed_changes(tmp_path: Path) -> None:
    rows = [Example(f"text number {i}", {"hate": i % 2}, "s", "MIT") for i in range(200)]

    def split(yaml_text: str) -> list[str]:
        _, val = split_data(load_config(_write(tmp_path, yaml_text)), rows)
        return sorted(ex.text for ex in val)

    data = "data:\n  source_caps: {s: 150}\n  max_val_rows: 10\n"
    base = split("seed: 13\n" + data)
    assert split("seed: 14\n" + data + "  split_seed: 13\n") == base
    assert split("seed: 14\n" + data) != base  # without it the seed moves the split


def test_config_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))


# ---------------------------------------------------------------- loss


def test_label_arrays_mask_unknown() -> None:
    labels = dict.fromkeys(CATEGORIES)
    labels.update({"hate": 1, "violence": 0})
    y, m = label_arrays(labels)
    assert y[CATEGORIES.index("hate")] == 1 and m[CATEGORIES.index("hate")] == 1
    assert y[CATEGORIES.index("violence")] == 0 and m[CATEGORIES.index("violence")] == 1
    assert m.sum() == 2


def test_masked_loss_ignores_unknown_labels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    mask = torch.tensor([[1.0, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
    pos_weight = torch.tensor([2.0, 3.0, 1.0])
    loss = masked_bce(logits, targets, mask, pos_weight)
    # whatever sits under the mask changes nothing
    scrambled = torch.where(mask.bool(), targets, 1 - targets)
    other_logits = torch.where(mask.bool(), logits, torch.full_like(logits, 50.0))
    assert torch.allclose(loss, masked_bce(logits, scrambled, mask, pos_weight))
    assert torch.allclose(loss, masked_bce(other_logits, targets, mask, pos_weight))
    loss.backward()
    assert torch.all(logits.grad[mask == 0] == 0)
    assert torch.all(logits.grad[mask == 1] != 0)
    # the mean runs over known labels only
    manual = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.detach()[mask.bool()], targets[mask.bool()], reduction="mean",
        pos_weight=pos_weight.expand_as(logits)[mask.bool()],
    )  # fmt: skip
    assert torch.allclose(loss.detach(), manual)


def test_masked_loss_all_unknown_is_zero_with_graph() -> None:
    logits = torch.randn(2, 3, requires_grad=True)
    loss = masked_bce(logits, torch.ones(2, 3), torch.zeros(2, 3))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_pos_weights_sqrt_and_clipped() -> None:
    def doc(y: list[float], m: list[float]) -> Doc:
        return Doc([[101, 102]], np.array(y, np.float32), np.array(m, np.float32), "s")

    # category 0: 4 positives, 96 negatives; 1: no positive; 2: positives only
    docs = [doc([1, 0, 1], [1, 1, 1])] * 4 + [doc([0, 0, 0], [1, 1, 0])] * 96
    w = pos_weights(docs, cap=10.0)
    assert w[0] == pytest.approx(np.sqrt(96 / 4))
    assert w[1] == 10.0
    assert w[2] == 1.0
    assert pos_weights(docs, cap=3.0)[0] == 3.0


# ---------------------------------------------------------------- windows


def _example(text: str, **labels: int | None) -> Example:
    full = dict.fromkeys(CATEGORIES)
    full.update({k.replace("_", "/"): v for k, v in labels.items()})
    return Example(text=text, labels=full, source="written", licence="test")


def test_window_labelling_max_pool_and_every_window(tokenizer) -> None:
    long_text = " ".join(f"word{i}" for i in range(400)) + " i will hurt you"
    examples = [_example("short and sweet", violence=0), _example(long_text, violence=1)]
    pooled = make_docs(examples, tokenizer, 128, 96, max_windows=50, window_labels="max_pool")
    assert [len(d.windows) for d in pooled][0] == 1
    n_long = len(pooled[1].windows)
    assert n_long > 3  # 400 words is well over 126 tokens
    assert all(len(w) <= 128 and w[0] == 101 and w[-1] == 102 for w in pooled[1].windows)

    every = make_docs(examples, tokenizer, 128, 96, max_windows=50, window_labels="every_window")
    assert len(every) == 1 + n_long
    v = CATEGORIES.index("violence")
    # every window of the long text carries the text's label
    assert [d.labels[v] for d in every[1:]] == [1.0] * n_long
    assert all(d.mask[v] == 1 for d in every)
    assert every[0].labels[v] == 0.0

    capped = make_docs(examples, tokenizer, 128, 96, max_windows=2)
    assert len(capped[1].windows) == 2
    assert capped[1].windows[0] == pooled[1].windows[0]
    assert capped[1].windows[-1] == pooled[1].windows[-1]  # the end (the threat) is kept


def test_spaced_subset_keeps_ends() -> None:
    assert spaced_subset(3, 6) == [0, 1, 2]
    assert spaced_subset(10, 3) == [0, 4, 9]
    assert spaced_subset(10, 1) == [0]


def test_doc_logits_is_max_over_windows_with_gradient_to_the_max() -> None:
    window_logits = torch.tensor(
        [[0.0, 5.0], [3.0, -1.0], [1.0, 1.0], [-2.0, 0.5]], requires_grad=True
    )
    owner = torch.tensor([0, 0, 1, 2])  # doc 0 has two windows
    slot = torch.tensor([0, 1, 0, 0])
    out = doc_logits(window_logits, owner, slot, n_docs=3, max_windows=2)
    assert out.tolist() == [[3.0, 5.0], [1.0, 1.0], [-2.0, 0.5]]
    out.sum().backward()
    assert window_logits.grad.tolist() == [[0, 1], [1, 0], [1, 1], [1, 1]]


def test_plan_batches_respects_window_budget_and_covers_docs() -> None:
    rng = np.random.default_rng(0)
    docs = [
        Doc([[101] + [5] * n + [102]] * (1 + n % 3), np.zeros(2, np.float32),
            np.ones(2, np.float32), "a" if n % 4 else "b")
        for n in range(1, 60)
    ]  # fmt: skip
    batches = plan_batches(docs, len(docs), 8, 0.0, 2, rng)
    assert sorted(i for b in batches for i in b) == list(range(len(docs)))
    assert all(sum(len(docs[i].windows) for i in b) <= 8 for b in batches)
    balanced = plan_batches(docs, 200, 8, 1.0, 2, np.random.default_rng(1))
    drawn = [docs[i].source for b in balanced for i in b]
    assert len(drawn) == 200
    assert 0.35 < drawn.count("b") / len(drawn) < 0.65  # uniform over the two sources


def test_cpu_has_amx_bf16_reads_the_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert cpu_has_amx_bf16(cpuinfo) is False
    # AVX512-BF16 without AMX: bf16 autocast measured slower than fp32 there
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 avx512_fp16\n")
    assert cpu_has_amx_bf16(cpuinfo) is False
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert cpu_has_amx_bf16(cpuinfo) is True
    assert cpu_has_amx_bf16(tmp_path / "missing") is None


def test_auto_precision_takes_bf16_only_where_the_cpu_has_amx() -> None:
    assert resolve_precision("auto", True) == "bf16"
    assert resolve_precision("auto", False) == "fp32"
    assert resolve_precision("auto", None) == "fp32"  # cannot tell: the safe choice
    # an explicit choice is kept, so a run can reproduce a model trained elsewhere
    assert resolve_precision("bf16", False) == "bf16"
    assert resolve_precision("fp32", True) == "fp32"


def test_steps_within_budget() -> None:
    # 100 steps in 50 s: 2 steps a second, so a 300 s budget holds 600 steps
    assert steps_within_budget(100, 50.0, 300.0, 1000) == 600
    assert steps_within_budget(100, 50.0, 300.0, 400) == 400  # never more than planned
    assert steps_within_budget(100, 50.0, 10.0, 1000) == 100  # never fewer than done
    assert steps_within_budget(0, 0.0, 300.0, 1000) == 1000  # no pace yet


@pytest.fixture
def tiny_pretrained(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit`` starts from a one-layer 16-wide encoder instead of the real base model."""
    from classifiers import modeling

    monkeypatch.setattr(
        modeling,
        "load_pretrained",
        lambda n, dropout: build_from_config(_tiny_encoder_config(1), n, dropout),
    )


@pytest.mark.usefixtures("tiny_pretrained")
def test_a_run_slower_than_its_budget_anneals_inside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake clock: every reading is one second after the last, so a step
    # takes 1-2 s and 60 planned steps cannot fit a 30 s budget. Training
    # must then end its LR decay early (LR 0 at the last step) rather than
    # stop mid-decay.
    clock = iter(range(10**6))
    monkeypatch.setattr(train_module.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(train_module, "BUDGET_CHECK_FROM", 4)
    monkeypatch.setattr(train_module, "BUDGET_CHECK_EVERY", 4)
    cfg = load_config(
        _write(
            tmp_path,
            "train:\n  epochs: 1\n  batch_size: 2\n  warmup_fraction: 0.05\n"
            "  time_budget_min: 0.5\n  source_balance: 0.0\n",
        )
    )
    docs = [Doc([[5 + i % 50, 6, 7]], *label_arrays({"hate": i % 2}), "test") for i in range(120)]
    _, stats = fit(cfg, docs, tmp_path, "fp32")
    assert stats["planned_steps"] == 60
    assert stats["steps"] == stats["scheduled_steps"] < 30
    assert not stats["stopped_early"]
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == stats["steps"] - 1
    assert log[-1]["lr"] == 0.0


@pytest.mark.usefixtures("tiny_pretrained")
def test_fit_with_any_weight_lowers_benign_texts_worst_category(tmp_path: Path) -> None:
    # Same tiny model, data and seed; only train.any_weight differs. The term
    # pushes down each benign text's highest category, so after training the
    # benign texts' maximum score must be lower with it than without.
    all_zero = {c: 0 for c in CATEGORIES}
    docs = [
        Doc([[5 + i % 40, 6, 7]], *label_arrays({**all_zero, "hate": int(i % 4 == 0)}), "t")
        for i in range(96)
    ]
    benign = [d for d in docs if d.labels.max() == 0]
    top = {}
    for weight in (0.0, 2.0):
        train_module.seed_everything(3)
        cfg = load_config(
            _write(
                tmp_path,
                "train:\n  epochs: 1\n  batch_size: 8\n  source_balance: 0.0\n"
                f"  head_lr: 0.01\n  lr: 0.001\n  any_weight: {weight}\n",
            )
        )
        model, _ = fit(cfg, docs, tmp_path, "fp32")
        batch = train_module.collate(benign)
        with torch.no_grad():
            scores = torch.sigmoid(
                model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            )
        top[weight] = float(scores.amax(dim=1).mean())
    assert top[2.0] < top[0.0]


def test_linear_schedule() -> None:
    lrs = [linear_schedule(s, 10, 2) for s in range(10)]
    assert lrs[0] == 0.5 and lrs[1] == 1.0
    assert lrs[-1] == pytest.approx(0.125)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))


# ---------------------------------------------------------------- distillation


def _tiny_encoder_config(layers: int) -> dict[str, object]:
    return {
        "vocab_size": 100,
        "hidden_size": 16,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 64,
    }


def test_keep_first_layers_drops_the_top_ones_and_updates_the_config() -> None:
    model = build_from_config(_tiny_encoder_config(3), len(CATEGORIES), 0.0)
    bottom = model.encoder.encoder.layer[0]
    keep_first_layers(model, 2)
    assert len(model.encoder.encoder.layer) == 2
    assert model.encoder.encoder.layer[0] is bottom
    assert model.encoder.config.num_hidden_layers == 2
    ids = torch.randint(5, 100, (2, 7))
    out = model(ids, torch.ones_like(ids), torch.zeros_like(ids))
    assert out.shape == (2, len(CATEGORIES))
    # the saved config rebuilds the same shape
    rebuilt = build_from_config(model.encoder.config.to_dict(), len(CATEGORIES), 0.0)
    rebuilt.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="n_layers"):
        keep_first_layers(model, 3)


def test_any_category_bce_judges_each_text_by_its_highest_category() -> None:
    n = len(CATEGORIES)
    logits = torch.full((4, n), -3.0)
    logits[0, 2] = 1.0  # benign, all labels known: its worst category is 1.0
    logits[1, 5] = 2.0  # a positive on another category: any = 1 all the same
    logits[2, 0] = 4.0  # unknown labels and no positive: left out
    targets = torch.zeros(4, n)
    targets[1, 0] = 1.0
    targets[3, 1] = 1.0  # a positive whose other labels are unknown: any = 1
    mask = torch.ones(4, n)
    mask[2, 3] = 0.0
    mask[3, 4:] = 0.0
    logits.requires_grad_(True)
    loss = any_category_bce(logits, targets, mask)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = (
        bce(torch.tensor(1.0), torch.tensor(0.0))
        + bce(torch.tensor(2.0), torch.tensor(1.0))
        + bce(torch.tensor(-3.0), torch.tensor(1.0))
    ) / 3
    assert float(loss) == pytest.approx(float(expected))
    loss.backward()
    assert logits.grad is not None
    # only each counted text's top category gets a gradient
    assert torch.count_nonzero(logits.grad[0]) == 1 and logits.grad[0, 2] > 0
    assert torch.count_nonzero(logits.grad[2]) == 0
    # nothing known: a zero loss, not a division by zero
    assert float(any_category_bce(logits, targets, torch.zeros(4, n))) == 0.0


def test_distill_loss_mixes_labels_and_teacher_scores() -> None:
    logits = torch.zeros(2, len(CATEGORIES))
    hard = torch.tensor(1.5)
    batch = {"soft": torch.full((2, len(CATEGORIES)), 0.5)}
    soft_term = float(np.log(2.0))  # BCE of p=0.5 against 0.5
    assert float(distill_loss(logits, batch, hard, 0.0)) == pytest.approx(1.5)
    assert float(distill_loss(logits, batch, hard, 1.0)) == pytest.approx(soft_term)
    assert float(distill_loss(logits, batch, hard, 0.25)) == pytest.approx(
        0.75 * 1.5 + 0.25 * soft_term
    )
    assert float(distill_loss(logits, {"soft": None}, hard, 0.5)) == pytest.approx(1.5)


def test_teacher_soft_targets_are_the_served_scores(model_dir: Path) -> None:
    # The teacher's target for a text is what serving would score it: the
    # max over its windows, whatever chunk each window ran in.
    clf = OnnxClassifier(model_dir, intra_op_threads=1)
    texts = ["you are wonderful", "i will hurt you", "the quick brown fox " * 60]
    docs = []
    for text in texts:
        ids = clf._tokenizer.encode(text, add_special_tokens=False).ids
        docs.append(Doc(clf.windows(ids), *label_arrays({}), "test"))
    assert len(docs[2].windows) > 1
    teacher_soft_targets(docs, model_dir, threads=1, docs_per_step=2)
    expected = clf.score(texts)
    for doc, row in zip(docs, expected, strict=True):
        assert doc.soft is not None
        np.testing.assert_allclose(doc.soft, row, atol=1e-4)
