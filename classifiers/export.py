"""Export a trained checkpoint to the ONNX files a model directory ships.

``python -m classifiers.export --checkpoint RUN/checkpoint --out DIR`` writes:

- ``model.fp32.onnx``: the reference graph, BERT-fused by ONNX Runtime's
  transformer optimizer (not committed: ``*.fp32.onnx`` is gitignored);
- ``model.int8.onnx``: the CPU variant, fused first, then dynamically
  quantised (int8 weights, activations quantised at run time);
- ``model.fp16.onnx``: the GPU variant, the fused graph in fp16 with int64
  inputs and a float32 output kept (``keep_io_types``);
- ``tokenizer.json`` and ``export_report.json`` (parity and timing figures);
- ``model_card.json`` and ``manifest.json`` copied from the training run
  directory (the checkpoint's parent), when they are there. The card's
  thresholds and evaluation belong to that run's int8 recipe; re-exporting
  with another ``--int8-recipe`` keeps them (re-evaluate with
  ``python -m classifiers.evaluate``).

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
#: How the int8 graph is made. ``fuse_then_quantize`` quantises ORT's fused
#: graph (QAttention); ``quantize_only`` quantises the plain export's MatMuls
#: and lets ORT's session-time optimiser do the rest; ``quantize_then_fuse``
#: fuses what the fuser still recognises after quantisation. Which is fastest
#: depends on the CPU: measure with ``--compare-orders``.
INT8_RECIPES = ("static", "fuse_then_quantize", "quantize_only", "quantize_then_fuse")
DEFAULT_INT8_RECIPE = "fuse_then_quantize"
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

    opt = optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
    opt.save_model_to_file(str(dst))
    stats = opt.get_fused_operator_statistics()
    return {k: int(v) for k, v in stats.items() if v}


def quantize_int8(src: Path, dst: Path, per_channel: bool = True) -> Path:
    """Dynamic quantisation: int8 weights for MatMul/Gemm/Attention, activations at run time.

    ``per_channel`` gives each output column its own weight scale: on the
    trained model it halved the mean |int8 - fp32| score difference (0.0089
    to 0.0040) for ~15% more latency.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
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


def build_int8(
    raw: Path,
    fused: Path,
    dst: Path,
    recipe: str,
    heads: int,
    hidden: int,
    per_channel: bool = True,
    calibration: Sequence[dict[str, np.ndarray]] = (),
    *,
    attention: bool = False,
    fp32_ffn_layers: Sequence[int] = (),
) -> Path:
    """Write the int8 graph by ``recipe`` (see :data:`INT8_RECIPES`).

    ``static`` (calibrated on ``calibration`` feeds) is the shipped recipe: its
    scores do not depend on batch neighbours; the dynamic recipes' do.
    """
    if recipe == "static":
        from classifiers.quantize import quantize_static_int8

        if not calibration:
            raise ValueError("int8_recipe 'static' needs calibration texts")
        return quantize_static_int8(
            raw,
            dst,
            calibration,
            per_channel=per_channel,
            attention_int8=attention,
            fp32_ffn_layers=fp32_ffn_layers,
        )
    if recipe == "fuse_then_quantize":
        return quantize_int8(fused, dst, per_channel)
    if recipe == "quantize_only":
        return quantize_int8(raw, dst, per_channel)
    if recipe == "quantize_then_fuse":
        with tempfile.TemporaryDirectory(prefix="modstream-q-") as tmp:
            quantize_int8(raw, Path(tmp) / "q.onnx", per_channel)
            fuse(Path(tmp) / "q.onnx", dst, heads, hidden)
        return dst
    raise ValueError(f"int8_recipe {recipe!r} is not one of {INT8_RECIPES}")


def benchmark_feeds(seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Synthetic timing batches: chat-like (32 windows, padded, <= 48 tokens) and full windows."""
    rng = np.random.default_rng(seed)
    out = []
    for batch, seq, padded in ((32, 48, True), (8, 128, False)):
        mask = np.ones((batch, seq), dtype=np.int64)
        if padded:
            for row in range(batch):
                mask[row, rng.integers(4, seq + 1) :] = 0
        ids = rng.integers(1000, 20000, (batch, seq)).astype(np.int64) * mask
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    return out


def export_model(
    model: MeanPoolClassifier,
    tokenizer_path: Path,
    out_dir: Path,
    *,
    max_tokens: int = 128,
    stride: int = 96,
    int8_recipe: str = DEFAULT_INT8_RECIPE,
    int8_per_channel: bool = True,
    int8_attention: bool = False,
    int8_fp32_ffn_layers: Sequence[int] = (),
    texts: Sequence[str] = PARITY_TEXTS,
    calibration_texts: Sequence[str] = (),
    compare_orders: bool = False,
    threads: int = 1,
) -> dict[str, Any]:
    """Write the fp32, int8 and fp16 graphs and the tokenizer to ``out_dir``; return the report.

    Raises:
        ValueError: a graph breaks the I/O contract, ONNX fp32 differs from
            torch by more than :data:`PARITY_TOL`, or ``int8_recipe`` is unknown.
    """
    import torch

    if int8_recipe not in INT8_RECIPES:
        raise ValueError(f"int8_recipe {int8_recipe!r} is not one of {INT8_RECIPES}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # training runs sdpa attention; only the eager graph is fused into Attention nodes
    model.encoder.set_attn_implementation("eager")
    cfg = model.encoder.config
    heads, hidden = int(cfg.num_attention_heads), int(cfg.hidden_size)
    n_labels = model.head.out_features
    scorer = SigmoidScorer(model).eval()
    report: dict[str, Any] = {
        "opset": OPSET,
        "exporter": "torch.onnx.export(dynamo=False)",
        "int8_recipe": int8_recipe,
        "int8_per_channel": int8_per_channel,
        "int8_attention": int8_attention,
        "int8_fp32_ffn_layers": list(int8_fp32_ffn_layers),
    }
    timings: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="modstream-export-") as tmp_name:
        tmp = Path(tmp_name)
        raw, fused = out_dir / FP32_FILE, tmp / "fused.fp32.onnx"
        t0 = time.perf_counter()
        export_fp32(scorer, raw)
        timings["export_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        report["fused_ops"] = fuse(raw, fused, heads, hidden)
        if not report["fused_ops"].get("Attention"):
            report["warnings"] = ["attention was not fused: the fp16 graph will be slow on GPU"]
        timings["fuse_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        calibration = [
            parity_feeds(tokenizer_path, calibration_texts[i : i + 32], max_tokens, stride)
            for i in range(0, len(calibration_texts), 32)
        ]
        build_int8(
            raw,
            fused,
            out_dir / INT8_FILE,
            int8_recipe,
            heads,
            hidden,
            int8_per_channel,
            calibration,
            attention=int8_attention,
            fp32_ffn_layers=int8_fp32_ffn_layers,
        )
        timings["int8_s"] = time.perf_counter() - t0
        # the GPU variant keeps the fused graph: fused Attention is where CUDA gains most
        convert_fp16(fused, out_dir / FP16_FILE)
        shutil.copyfile(tokenizer_path, out_dir / TOKENIZER_FILE)

        report["io"] = check_io(out_dir / INT8_FILE, n_labels)
        for name in (FP32_FILE, FP16_FILE):
            check_io(out_dir / name, n_labels)

        feeds = parity_feeds(tokenizer_path, texts, max_tokens, stride)
        with torch.no_grad():
            reference = scorer(*(torch.from_numpy(feeds[k]) for k in INPUT_NAMES)).numpy()
        fp32 = run_onnx(_session(raw, threads), feeds)
        int8 = run_onnx(_session(out_dir / INT8_FILE, threads), feeds)
        parity: dict[str, Any] = {
            "batch_shape": list(feeds["input_ids"].shape),
            "torch_vs_onnx_fp32_max_abs": float(np.abs(reference - fp32).max()),
            "torch_vs_onnx_fused_fp32_max_abs": float(
                np.abs(reference - run_onnx(_session(fused, threads), feeds)).max()
            ),
            "int8_vs_fp32_max_abs": float(np.abs(int8 - fp32).max()),
            "int8_vs_fp32_mean_abs": float(np.abs(int8 - fp32).mean()),
        }
        try:
            fp16 = run_onnx(_session(out_dir / FP16_FILE, threads), feeds)
            parity["fp16_vs_fp32_max_abs_cpu"] = float(np.abs(fp16 - fp32).max())
        except Exception as exc:  # CPU EP may lack fp16 kernels; the GPU is where it runs
            parity["fp16_vs_fp32_max_abs_cpu"] = f"not runnable on CPU: {exc}"[:300]
        report["parity"] = parity
        worst = max(
            parity["torch_vs_onnx_fp32_max_abs"], parity["torch_vs_onnx_fused_fp32_max_abs"]
        )
        if not worst < PARITY_TOL:
            raise ValueError(
                f"ONNX fp32 differs from torch by {worst:.2e} (limit {PARITY_TOL:.0e}); "
                "refusing to write a model that scores differently from the one trained"
            )
        if compare_orders:
            report["orders"] = compare_int8_recipes(
                raw, fused, fp32, feeds, threads, tmp, heads, hidden, calibration
            )

    report["timings"] = {k: round(v, 3) for k, v in timings.items()}
    report["sizes_mb"] = {
        name: round((out_dir / name).stat().st_size / 2**20, 2)
        for name in (FP32_FILE, INT8_FILE, FP16_FILE)
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def compare_int8_recipes(
    raw: Path,
    fused: Path,
    fp32: np.ndarray,
    feeds: dict[str, np.ndarray],
    threads: int,
    tmp: Path,
    heads: int,
    hidden: int,
    calibration: Sequence[dict[str, np.ndarray]] = (),
    rounds: int = 7,
) -> dict[str, Any]:
    """Median latency of each graph on the timing batches, and each int8 graph's error.

    The static recipe is compared only when calibration feeds are given.
    """
    graphs = {"fp32": raw, "fp32_fused": fused}
    for recipe in INT8_RECIPES:
        if recipe == "static" and not calibration:
            continue
        for per_channel in (False, True):
            suffix = "_per_channel" if per_channel else ""
            graphs[f"int8_{recipe}{suffix}"] = build_int8(
                raw,
                fused,
                tmp / f"{recipe}{suffix}.onnx",
                recipe,
                heads,
                hidden,
                per_channel,
                calibration,
            )
    batches = benchmark_feeds()
    sessions = {name: _session(path, threads) for name, path in graphs.items()}
    for sess in sessions.values():  # warm-up
        for b in batches:
            run_onnx(sess, b)
    # interleaved rounds: a burst of load from another process hits every graph alike
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for name, sess in sessions.items():
            for k, b in enumerate(batches):
                start = time.perf_counter()
                run_onnx(sess, b)
                times.setdefault((name, k), []).append(time.perf_counter() - start)
    rows: dict[str, Any] = {}
    for name, sess in sessions.items():
        row: dict[str, Any] = {
            f"latency_ms_{b['input_ids'].shape[0]}x{b['input_ids'].shape[1]}": round(
                1000 * float(np.median(times[(name, k)])), 1
            )
            for k, b in enumerate(batches)
        }
        row["max_abs_vs_fp32"] = float(np.abs(run_onnx(sess, feeds) - fp32).max())
        row["size_mb"] = round(graphs[name].stat().st_size / 2**20, 2)
        rows[name] = row
    return {"threads": threads, **rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifiers.export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint dir")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument(
        "--compare-orders", action="store_true", help="also time quantize/fuse orders"
    )
    parser.add_argument(
        "--int8-recipe",
        choices=INT8_RECIPES,
        default=None,
        help="how to build the int8 graph (default: the one the training config chose)",
    )
    parser.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="per-channel int8 weight scales (default: as the training config chose)",
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
        int8_recipe=args.int8_recipe or meta.extra.get("int8_recipe", DEFAULT_INT8_RECIPE),
        int8_per_channel=(
            args.per_channel
            if args.per_channel is not None
            else bool(meta.extra.get("int8_per_channel", True))
        ),
        int8_attention=bool(meta.extra.get("int8_attention", False)),
        int8_fp32_ffn_layers=meta.extra.get("int8_fp32_ffn_layers", []),
        compare_orders=args.compare_orders,
        threads=args.threads,
    )
    # a checkpoint written by classifiers.train sits in its run directory, next
    # to the card (thresholds, evaluation) and the data manifest: carry them over
    run_dir = args.checkpoint.resolve().parent
    if run_dir != args.out.resolve():
        for name in ("model_card.json", "manifest.json"):
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, args.out / name)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
