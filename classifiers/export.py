"""Export a trained checkpoint to the ONNX files a model directory ships.

``python -m classifiers.export --checkpoint RUN/checkpoint --out DIR`` writes:

- ``model.fp32.onnx``: the reference graph, BERT-fused by ONNX Runtime's
  transformer optimizer (not committed: ``*.fp32.onnx`` is gitignored);
- ``model.int8.onnx``: the CPU variant, fused first, then dynamically
  quantised (int8 weights, activations quantised at run time);
- ``model.fp16.onnx``: the GPU variant, the fused graph in fp16 with int64
  inputs and a float32 output kept (``keep_io_types``);
- ``tokenizer.json`` and ``export_report.json`` (parity and timing figures).

Graph contract (the serving runtime relies on it): inputs ``input_ids``,
``attention_mask``, ``token_type_ids`` (int64, ``[batch, seq]``, both axes
dynamic); output ``scores`` (float32, ``[batch, n_categories]``, sigmoid
applied). The exporter is torch's TorchScript-based one (``dynamo=False``): on
torch 2.13 it still works, and with the encoder's eager attention it yields
the subgraph ORT's fuser turns into ``Attention``/``EmbedLayerNormalization``
nodes (the dynamo exporter's graph is not fused).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.modeling import (
    INPUT_NAMES,
    OUTPUT_NAME,
    TOKENIZER_FILE,
    MeanPoolClassifier,
    SigmoidScorer,
    load_checkpoint,
)
from classifiers.windows import encode_windows, load_tokenizer, pad_batch

FP32_FILE = "model.fp32.onnx"
INT8_FILE = "model.int8.onnx"
FP16_FILE = "model.fp16.onnx"
REPORT_FILE = "export_report.json"
OPSET = 17
#: torch fp32 vs ONNX fp32 must agree this closely, or the export is refused
PARITY_TOL = 1e-4

#: Parity inputs when no texts are given: short and long, benign and not, so
#: the batch mixes padding lengths and the window split is exercised.
PARITY_TEXTS: tuple[str, ...] = (
    "gg wp, see you tomorrow",
    "I will find where you live and hurt you",
    "those people are vermin and should be wiped out",
    "how do I kill a python process that hangs?",
    "I don't want to be here anymore, I've been thinking about ending it",
    "Lovely weather for a walk by the river this afternoon. " * 20,
    "k i l l yourself, nobody would miss you",
    "The recipe calls for two cups of flour and a pinch of salt.",
)


def export_fp32(scorer: SigmoidScorer, path: Path, opset: int = OPSET) -> Path:
    """Trace ``scorer`` to ONNX with dynamic batch and sequence axes."""
    import torch

    scorer.eval()
    example = (
        torch.randint(1000, 2000, (2, 16), dtype=torch.long),
        torch.ones(2, 16, dtype=torch.long),
        torch.zeros(2, 16, dtype=torch.long),
    )
    axes = {name: {0: "batch", 1: "seq"} for name in INPUT_NAMES}
    axes[OUTPUT_NAME] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        # the tracer warns about python-level shape checks inside transformers'
        # mask helpers; the parity check over several shapes is what guards us
        warnings.simplefilter("ignore")
        torch.onnx.export(
            scorer,
            example,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def fuse(src: Path, dst: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """ORT's BERT fusion (Attention, EmbedLayerNorm, SkipLayerNorm, BiasGelu); returns op counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(
        str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size
    )
    opt.save_model_to_file(str(dst))
    stats = opt.get_fused_operator_statistics()
    return {k: int(v) for k, v in stats.items() if v}


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic quantisation: int8 weights for MatMul/Gemm/Attention, activations at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        # ONNX shape inference cannot type the outputs of ORT's fused contrib
        # ops (Attention, SkipLayerNormalization); they are all float32 here
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return dst


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and compute; int64 inputs and the float32 ``scores`` output are kept."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))
    return dst


def _session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(session.run([OUTPUT_NAME], feeds)[0])


def check_io(path: Path, n_labels: int) -> dict[str, Any]:
    """Verify the graph's input/output names, dtypes and axes against the contract."""
    sess = _session(path)
    inputs = {i.name: (i.type, list(i.shape)) for i in sess.get_inputs()}
    outputs = {o.name: (o.type, list(o.shape)) for o in sess.get_outputs()}
    problems = []
    if set(inputs) != set(INPUT_NAMES):
        problems.append(f"inputs are {sorted(inputs)}, expected {list(INPUT_NAMES)}")
    for name, (dtype, shape) in inputs.items():
        if dtype != "tensor(int64)" or len(shape) != 2 or any(isinstance(d, int) for d in shape):
            problems.append(f"input {name} is {dtype} {shape}, expected int64 [batch, seq]")
    if list(outputs) != [OUTPUT_NAME]:
        problems.append(f"outputs are {list(outputs)}, expected ['{OUTPUT_NAME}']")
    else:
        dtype, shape = outputs[OUTPUT_NAME]
        if dtype != "tensor(float)" or len(shape) != 2 or shape[1] != n_labels:
            problems.append(f"output is {dtype} {shape}, expected float32 [batch, {n_labels}]")
    if problems:
        raise ValueError(f"{path.name} breaks the ONNX contract: " + "; ".join(problems))
    return {"inputs": inputs, "outputs": outputs}


def parity_feeds(
    tokenizer_path: Path, texts: Sequence[str], max_tokens: int, stride: int
) -> dict[str, np.ndarray]:
    windows = encode_windows(load_tokenizer(tokenizer_path), texts, max_tokens, stride)
    return pad_batch(windows.ids)


def time_session(session: Any, feeds: dict[str, np.ndarray], repeats: int = 5) -> float:
    """Median seconds for one ``run`` over ``feeds`` (after one warm-up)."""
    run_onnx(session, feeds)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_onnx(session, feeds)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def export_model(
    model: MeanPoolClassifier,
    tokenizer_path: Path,
    out_dir: Path,
    *,
    max_tokens: int = 128,
    stride: int = 96,
    texts: Sequence[str] = PARITY_TEXTS,
    compare_orders: bool = False,
    threads: int = 1,
) -> dict[str, Any]:
    """Write the fp32, int8 and fp16 graphs and the tokenizer to ``out_dir``; return the report.

    Raises:
        ValueError: a graph breaks the I/O contract, or ONNX fp32 differs from
            torch by more than :data:`PARITY_TOL`.
    """
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.encoder.config
    n_labels = model.head.out_features
    scorer = SigmoidScorer(model).eval()
    report: dict[str, Any] = {"opset": OPSET, "exporter": "torch.onnx.export(dynamo=False)"}
    timings: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="modstream-export-") as tmp_name:
        tmp = Path(tmp_name)
        raw = tmp / "raw.fp32.onnx"
        t0 = time.perf_counter()
        export_fp32(scorer, raw)
        timings["export_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        report["fused_ops"] = fuse(
            raw, out_dir / FP32_FILE, int(cfg.num_attention_heads), int(cfg.hidden_size)
        )
        timings["fuse_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        quantize_int8(out_dir / FP32_FILE, out_dir / INT8_FILE)
        timings["quantize_s"] = time.perf_counter() - t0
        convert_fp16(out_dir / FP32_FILE, out_dir / FP16_FILE)
        shutil.copyfile(tokenizer_path, out_dir / TOKENIZER_FILE)

        report["io"] = check_io(out_dir / INT8_FILE, n_labels)
        for name in (FP32_FILE, FP16_FILE):
            check_io(out_dir / name, n_labels)

        feeds = parity_feeds(tokenizer_path, texts, max_tokens, stride)
        with torch.no_grad():
            reference = scorer(*(torch.from_numpy(feeds[k]) for k in INPUT_NAMES)).numpy()
        outputs = {
            "raw_fp32": run_onnx(_session(raw, threads), feeds),
            "fp32": run_onnx(_session(out_dir / FP32_FILE, threads), feeds),
            "int8": run_onnx(_session(out_dir / INT8_FILE, threads), feeds),
        }
        parity: dict[str, Any] = {
            "batch_shape": list(feeds["input_ids"].shape),
            "torch_vs_onnx_fp32_unfused_max_abs": float(np.abs(reference - outputs["raw_fp32"]).max()),
            "torch_vs_onnx_fp32_max_abs": float(np.abs(reference - outputs["fp32"]).max()),
            "int8_vs_fp32_max_abs": float(np.abs(outputs["int8"] - outputs["fp32"]).max()),
            "int8_vs_fp32_mean_abs": float(np.abs(outputs["int8"] - outputs["fp32"]).mean()),
        }
        try:
            fp16 = run_onnx(_session(out_dir / FP16_FILE, threads), feeds)
            parity["fp16_vs_fp32_max_abs_cpu"] = float(np.abs(fp16 - outputs["fp32"]).max())
        except Exception as exc:  # CPU EP may lack fp16 kernels; the GPU is where it runs
            parity["fp16_vs_fp32_max_abs_cpu"] = f"not runnable on CPU: {exc}"[:300]
        report["parity"] = parity
        worst = max(
            parity["torch_vs_onnx_fp32_unfused_max_abs"], parity["torch_vs_onnx_fp32_max_abs"]
        )
        if not worst < PARITY_TOL:
            raise ValueError(
                f"ONNX fp32 differs from torch by {worst:.2e} (limit {PARITY_TOL:.0e}); "
                "refusing to write a model that scores differently from the one trained"
            )

        if compare_orders:
            report["orders"] = _compare_orders(
                raw, out_dir, cfg, outputs["fp32"], feeds, threads, tmp
            )

    report["timings"] = {k: round(v, 3) for k, v in timings.items()}
    report["sizes_mb"] = {
        name: round((out_dir / name).stat().st_size / 2**20, 2)
        for name in (FP32_FILE, INT8_FILE, FP16_FILE)
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _compare_orders(
    raw: Path,
    out_dir: Path,
    cfg: Any,
    fp32: np.ndarray,
    feeds: dict[str, np.ndarray],
    threads: int,
    tmp: Path,
) -> dict[str, Any]:
    """Latency and error of fuse->quantize, quantize->fuse and quantize-only int8 graphs."""
    heads, hidden = int(cfg.num_attention_heads), int(cfg.hidden_size)
    candidates = {"fuse_then_quantize": out_dir / INT8_FILE}
    quantize_int8(raw, tmp / "q_only.onnx")
    candidates["quantize_only"] = tmp / "q_only.onnx"
    try:
        fuse(tmp / "q_only.onnx", tmp / "q_then_f.onnx", heads, hidden)
        candidates["quantize_then_fuse"] = tmp / "q_then_f.onnx"
    except Exception as exc:
        candidates["quantize_then_fuse"] = Path(f"failed: {exc}")
    rows: dict[str, Any] = {
        "fp32_fused": {"latency_ms": 1000 * time_session(_session(out_dir / FP32_FILE, threads), feeds)},
        "fp32_unfused": {"latency_ms": 1000 * time_session(_session(raw, threads), feeds)},
    }
    for name, path in candidates.items():
        if not path.is_file():
            rows[name] = {"error": str(path)}
            continue
        sess = _session(path, threads)
        out = run_onnx(sess, feeds)
        rows[name] = {
            "latency_ms": 1000 * time_session(sess, feeds),
            "max_abs_vs_fp32": float(np.abs(out - fp32).max()),
            "size_mb": round(path.stat().st_size / 2**20, 2),
        }
    return {"threads": threads, "batch_shape": list(feeds["input_ids"].shape), **rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifiers.export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint dir")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument(
        "--compare-orders", action="store_true", help="also time quantize/fuse orders"
    )
    parser.add_argument("--threads", type=int, default=1, help="ORT threads for parity/timing")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.checkpoint)
    report = export_model(
        model,
        args.checkpoint / TOKENIZER_FILE,
        args.out,
        max_tokens=meta.max_tokens,
        stride=meta.window_stride,
        compare_orders=args.compare_orders,
        threads=args.threads,
    )
    card = args.checkpoint.parent / "model_card.json"
    if card.is_file() and card.parent.resolve() != args.out.resolve():
        shutil.copyfile(card, args.out / "model_card.json")
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
