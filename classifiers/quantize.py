"""Static int8 quantisation (QDQ, calibrated), so a text's score never depends on its batch.

Dynamic quantisation picks each activation's scale from the batch being
run, so the same text scores differently beside different neighbours (up
to a few hundredths), which breaks the dedupe cache's promise and makes
length sorting change results. Static quantisation fixes the scales once,
from calibration batches of real training texts, so int8 scoring is a pure
function of the text. Weights are per-channel int8, activations uint8.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
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


def quantize_static_int8(src: Path, dst: Path, calibration: Iterable[Feeds]) -> Path:
    """Write a calibrated static-int8 (QDQ) copy (MatMul, Gemm, and the embedding Gather) of the fp32 graph ``src`` to ``dst``.

    ``calibration`` yields model feeds (``input_ids``, ``attention_mask``,
    ``token_type_ids``) built exactly as serving builds them; a few hundred
    windows of real text are enough for MinMax ranges.
    """
    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(pre),
            str(dst),
            _Reader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["MatMul", "Gemm", "Gather"],
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    finally:
        pre.unlink(missing_ok=True)
    return dst
