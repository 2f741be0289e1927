"""Static int8 quantisation (QDQ, calibrated), so a text's score never depends on its batch.

Dynamic quantisation picks each activation's scale from the batch being
run, so the same text scores differently beside different neighbours (up
to a few hundredths), which breaks the dedupe cache's promise and makes
length sorting change results. Static quantisation fixes the scales once,
from calibration batches of real training texts, so int8 scoring is a pure
function of the text. Weights are per-channel int8, activations uint8;
attention's two activation-by-activation products and, where asked, some
layers' FFN output projections stay fp32.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

Feeds = dict[str, np.ndarray]


class _Reader(CalibrationDataReader):
    def __init__(self, feeds: Iterable[Feeds]) -> None:
        self._feeds: Iterator[Feeds] = iter(list(feeds))

    def get_next(self) -> Feeds | None:
        return next(self._feeds, None)


def activation_matmuls(graph: onnx.GraphProto) -> list[str]:
    """Names of the MatMul nodes with no weight input: attention's ``QK^T`` and ``PV`` products."""
    weights = {init.name for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and not any(i in weights for i in node.input)
    ]


_FFN_OUTPUT = re.compile(r"/layer\.(\d+)/output/dense/MatMul$")


def ffn_output_matmuls(graph: onnx.GraphProto, layers: Sequence[int]) -> list[str]:
    """Names of the FFN output projections (``intermediate -> hidden``) of ``layers``.

    Their input is the GELU output, whose rare large values stretch a
    MinMax uint8 range until ordinary values share a handful of levels.

    Raises:
        ValueError: the graph has no FFN output projection for one of ``layers``.
    """
    found = {
        int(match.group(1)): node.name
        for node in graph.node
        if (match := _FFN_OUTPUT.search(node.name))
    }
    if missing := sorted(set(layers) - found.keys()):
        raise ValueError(
            f"int8_fp32_ffn_layers: no FFN output MatMul for layer {missing} "
            f"(the graph has layers {sorted(found)})"
        )
    return [found[layer] for layer in sorted(set(layers))]


def quantize_static_int8(
    src: Path,
    dst: Path,
    calibration: Iterable[Feeds],
    *,
    per_channel: bool = True,
    attention_int8: bool = True,
    fp32_ffn_layers: Sequence[int] = (),
) -> Path:
    """Write a calibrated static-int8 (QDQ) copy (MatMul, Gemm, and the embedding Gather) of the fp32 graph ``src`` to ``dst``.

    ``calibration`` yields model feeds (``input_ids``, ``attention_mask``,
    ``token_type_ids``) built exactly as serving builds them; a few hundred
    windows of real text are enough for MinMax ranges. ``attention_int8``
    False keeps attention's two activation-by-activation products in fp32:
    for chat lines (a few tokens) they are tiny, and quantising both of their
    inputs costs more than it saves. ``fp32_ffn_layers`` keeps those layers'
    FFN output projections in fp32 (see :func:`ffn_output_matmuls`).
    """
    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    try:
        graph = onnx.load(str(pre), load_external_data=False).graph  # parsed once for both scans
        exclude = ffn_output_matmuls(graph, fp32_ffn_layers)
        if not attention_int8:
            exclude += activation_matmuls(graph)
        quantize_static(
            str(pre),
            str(dst),
            _Reader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            nodes_to_exclude=exclude,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["MatMul", "Gemm", "Gather"],
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    finally:
        pre.unlink(missing_ok=True)
    return dst
