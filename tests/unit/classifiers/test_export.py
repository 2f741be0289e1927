"""Export a tiny random BERT through the real export path and check the ONNX contract."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from classifiers.evaluate import WindowedOnnxScorer  # noqa: E402
from classifiers.export import (  # noqa: E402
    FP16_FILE,
    FP32_FILE,
    INT8_FILE,
    REPORT_FILE,
    check_io,
    export_model,
)
from classifiers.modeling import (  # noqa: E402
    CheckpointMeta,
    base_model_dir,
    build_from_config,
    load_checkpoint,
    save_checkpoint,
)
from classifiers.taxonomy import CATEGORIES  # noqa: E402
from classifiers.windows import pad_batch, split_windows  # noqa: E402

TINY = {
    "vocab_size": 30522,  # the real tokenizer's ids must fit
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
}
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, object]:
    torch.manual_seed(0)
    model = build_from_config(TINY, len(CATEGORIES), dropout=0.1, attn="sdpa").eval()
    out = tmp_path_factory.mktemp("model")
    report = export_model(model, base_model_dir() / "tokenizer.json", out, threads=1)
    return out, report, model


def test_files_and_report(exported) -> None:
    out, report, _ = exported
    for name in (FP32_FILE, INT8_FILE, FP16_FILE, "tokenizer.json", REPORT_FILE):
        assert (out / name).is_file(), name
    assert report["fused_ops"].get("Attention") == TINY["num_hidden_layers"]
    assert report["parity"]["torch_vs_onnx_fp32_max_abs"] < 1e-4
    assert report["parity"]["torch_vs_onnx_fused_fp32_max_abs"] < 1e-4
    assert isinstance(report["parity"]["int8_vs_fp32_max_abs"], float)
    assert json.loads((out / REPORT_FILE).read_text())["int8_recipe"] == report["int8_recipe"]


@pytest.mark.parametrize("name", [FP32_FILE, INT8_FILE, FP16_FILE])
def test_io_contract(exported, name: str) -> None:
    out, _, _ = exported
    sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in sess.get_inputs()}
    assert sorted(inputs) == ["attention_mask", "input_ids", "token_type_ids"]
    for i in inputs.values():
        assert i.type == "tensor(int64)"
        assert len(i.shape) == 2 and all(isinstance(d, str) for d in i.shape)  # dynamic
    (output,) = sess.get_outputs()
    assert output.name == "scores" and output.type == "tensor(float)"
    assert output.shape[1] == len(CATEGORIES)
    check_io(out / name, len(CATEGORIES))

    for batch, seq in ((1, 3), (5, 40), (2, 128)):
        ids = np.random.default_rng(batch).integers(1000, 20000, (batch, seq)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[-1, seq // 2 :] = 0
        scores = sess.run(["scores"], {"input_ids": ids * mask, "attention_mask": mask,
                                       "token_type_ids": np.zeros_like(ids)})[0]  # fmt: skip
        assert scores.shape == (batch, len(CATEGORIES)) and scores.dtype == np.float32
        assert np.all((scores > 0) & (scores < 1))  # sigmoid is in the graph


def test_onnx_matches_torch_on_padded_batch(exported) -> None:
    out, _, model = exported
    windows = [[101, *range(2000, 2000 + n), 102] for n in (1, 7, 60)]
    feeds = pad_batch(windows)
    with torch.no_grad():
        ref = torch.sigmoid(model(*(torch.from_numpy(feeds[k]) for k in
                                    ("input_ids", "attention_mask", "token_type_ids"))))  # fmt: skip
    sess = ort.InferenceSession(str(out / FP32_FILE), providers=["CPUExecutionProvider"])
    got = sess.run(["scores"], feeds)[0]
    assert np.abs(got - ref.numpy()).max() < 1e-4
    # padding does not leak into a row's score
    alone = sess.run(["scores"], pad_batch(windows[:1]))[0]
    assert np.abs(alone[0] - got[0]).max() < 1e-5


def test_checkpoint_round_trip(tmp_path: Path, exported) -> None:
    _, _, model = exported
    meta = CheckpointMeta(categories=list(CATEGORIES), encoder_config=TINY)
    save_checkpoint(model, meta, base_model_dir() / "tokenizer.json", tmp_path)
    loaded, loaded_meta = load_checkpoint(tmp_path)
    assert loaded_meta.categories == list(CATEGORIES)
    ids = torch.tensor([[101, 2000, 2001, 102]])
    ones, zeros = torch.ones_like(ids), torch.zeros_like(ids)
    with torch.no_grad():
        assert torch.allclose(model(ids, ones, zeros), loaded(ids, ones, zeros), atol=1e-6)


def test_windows_match_the_serving_runtime() -> None:
    runtime = pytest.importorskip("classifiers.runtime")
    for max_tokens, stride in ((128, 96), (16, 5), (10, 8)):
        fake = SimpleNamespace(
            card=SimpleNamespace(max_tokens=max_tokens, window_stride=stride), _cls=101, _sep=102
        )
        for n in [0, 1, *range(max_tokens - 4, max_tokens + 2), 300, 1001]:
            ids = list(range(1000, 1000 + n))
            expected = runtime.OnnxClassifier.windows(fake, ids)
            assert split_windows(ids, 101, 102, max_tokens, stride) == expected, (n, stride)


def test_fallback_scorer_matches_the_serving_runtime(exported) -> None:
    runtime = pytest.importorskip("classifiers.runtime")
    out, _, _ = exported
    card = {
        "name": "tiny", "version": "0", "categories": list(CATEGORIES),
        "thresholds": dict.fromkeys(CATEGORIES, 0.5), "max_tokens": 128, "window_stride": 96,
        "variants": {"fp32": FP32_FILE, "int8": INT8_FILE},
    }  # fmt: skip
    (out / "model_card.json").write_text(json.dumps(card))
    texts = ["hi", LONG, "k i l l  y\u200bou", LONG + " and then some more words at the end"]
    clf = runtime.OnnxClassifier(out, variant="fp32", intra_op_threads=1)
    ours = WindowedOnnxScorer(out / FP32_FILE, out / "tokenizer.json", threads=1)(texts)
    assert np.abs(clf.score(texts) - ours).max() < 1e-5


def test_recipe_comparison_includes_the_calibrated_static_recipe(tmp_path: Path) -> None:
    # the teacher config asked for the comparison with the static recipe and
    # the export died: the comparison built static graphs without calibration
    torch.manual_seed(0)
    model = build_from_config(TINY, len(CATEGORIES), dropout=0.1, attn="sdpa").eval()
    report = export_model(
        model,
        base_model_dir() / "tokenizer.json",
        tmp_path,
        int8_recipe="static",
        calibration_texts=["hello there", LONG, "a third calibration text"],
        compare_orders=True,
        threads=1,
    )
    compared = set(report["orders"])
    assert {"int8_static", "int8_static_per_channel", "int8_quantize_only"} <= compared


def _float_weight_matmuls(path: Path) -> set[str]:
    """MatMul nodes whose weight is a plain fp32 initializer (not int8 behind a DequantizeLinear)."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {init.name for init in graph.initializer if init.data_type == onnx.TensorProto.FLOAT}
    return {n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & weights}


def test_static_int8_keeps_the_chosen_ffn_outputs_in_fp32(tmp_path: Path) -> None:
    # through export_model, so the setting must travel train -> export -> quantize
    torch.manual_seed(0)
    model = build_from_config(TINY, len(CATEGORIES), dropout=0.1, attn="sdpa").eval()
    texts = ["hello there", LONG, "a third calibration text"]
    tokenizer = base_model_dir() / "tokenizer.json"
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    export_model(model, tokenizer, plain, int8_recipe="static", calibration_texts=texts, threads=1)
    report = export_model(
        model,
        tokenizer,
        kept,
        int8_recipe="static",
        int8_fp32_ffn_layers=[1],
        calibration_texts=texts,
        threads=1,
    )
    assert report["int8_fp32_ffn_layers"] == [1]
    assert not any("/output/dense/" in n for n in _float_weight_matmuls(plain / INT8_FILE))
    assert {n for n in _float_weight_matmuls(kept / INT8_FILE) if "/output/dense/" in n} == {
        "/model/encoder/encoder/layer.1/output/dense/MatMul"
    }


def test_fp32_ffn_layers_missing_from_the_graph_is_an_error(exported) -> None:
    import onnx

    from classifiers.quantize import ffn_output_matmuls

    out, _, _ = exported
    graph = onnx.load(str(out / FP32_FILE)).graph
    assert ffn_output_matmuls(graph, []) == []
    with pytest.raises(ValueError, match=r"no FFN output MatMul for layer \[2\].*layers \[0, 1\]"):
        ffn_output_matmuls(graph, [1, 2])
