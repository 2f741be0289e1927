"""Model throughput on a GPU: fp16 on CUDA (IO binding) and TensorRT, by batch size. Prints JSON."""

from __future__ import annotations

import json
import time

import onnxruntime as ort

from classifiers.api import TextClassifier
from classifiers.runtime import DEFAULT_MODEL_DIR, OnnxClassifier
from stream.bench import demo_texts


def rate(clf: TextClassifier, texts: list[str], batch: int, seconds: float = 8.0) -> float:
    clf.score(texts[:batch])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(0, len(texts), batch):
            clf.score(texts[i : i + batch])
            done += len(texts[i : i + batch])
    return round(done / (time.perf_counter() - start), 1)


def main() -> None:
    texts = demo_texts() * 4
    runs: list[dict[str, object]] = []
    for providers in (
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    ):
        try:
            clf = OnnxClassifier(
                DEFAULT_MODEL_DIR,
                providers=providers,
                variant="fp16",
                cache_size=0,
                chunk_windows=1024,
            )
        except Exception as exc:  # report, keep going
            runs.append({"providers": providers, "error": repr(exc)})
            continue
        for batch in (64, 256, 1024):
            runs.append(
                {
                    "provider": clf.provider,
                    "variant": clf.variant,
                    "batch": batch,
                    "msgs_per_s": rate(clf, texts, batch),
                }
            )
    out = {"available_providers": ort.get_available_providers(), "runs": runs}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
