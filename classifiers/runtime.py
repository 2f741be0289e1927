"""The ONNX Runtime classifier: normalise, tokenise, window, batch by length, infer.

How a list of texts becomes scores:

1. :func:`~classifiers.normalize.normalize` each text (as in training), and
   look it up in the dedupe cache.
2. Tokenise the misses once, without truncation; cut each into windows of
   ``max_tokens`` (with ``[CLS]``/``[SEP]``) every ``window_stride`` tokens,
   so long texts are scored whole, not silently truncated.
3. Sort windows by length and run them in chunks padded to the chunk's own
   longest window: short chat lines never pay for a long one's padding.
4. A text's score per category is the maximum over its windows.

``prepare`` does 1-3 (pure CPU, tokenizers releases the GIL), ``infer`` does
4 and the model run, so the stream overlaps the next batch's tokenising
with this batch's inference.

On the CPU a batch's chunks run on ``streams`` threads at once, each ONNX run
on ``threads / streams`` intra-op threads. Chat lines make small matrices
(a chunk is a few hundred tokens), which one thread keeps busy better than
two: on 2 cores, two single-threaded runs side by side scored 1,215-1,269
windows/s where one run on two threads scored 947-1,140 (int8 6-layer
model, 48x16 windows).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from classifiers.cache import ScoreCache, text_key
from classifiers.card import ModelCard, ModelLoadError, load_card
from classifiers.normalize import normalize
from classifiers.windows import PAD_ID, load_tokenizer, pad_batch, split_windows

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "modstream-minilm"
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
#: Most windows in one ONNX run.
CHUNK_WINDOWS = 256
#: Most padded tokens (windows x longest window) in one ONNX run. Measured on
#: the demo traffic (median 8 tokens) with the int8 model on 2 cores: one
#: 64-text run padded to its longest text scored 80 msg/s, chunks of 8
#: windows 489 msg/s; a token budget keeps chunks of short lines large. With
#: two streams and batches of 256, 256 tokens scored 1,660-1,668 msg/s, 384
#: 1,575-1,589 and 192 1,547 (4-layer model): more, smaller chunks keep both
#: streams busy to the end of a batch.
CHUNK_TOKENS = 256


def cpu_quota() -> int:
    """CPUs this process may use: the cgroup quota if one is set, else the affinity mask."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(1, math.floor(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, len(os.sched_getaffinity(0)))


@dataclass
class Prepared:
    """A tokenised batch: cached rows, and length-sorted padded chunks of windows."""

    n_texts: int
    keys: list[bytes]
    scores: np.ndarray  # [n_texts, n_categories], cached rows filled in
    todo: np.ndarray  # indices of texts that need the model
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    #: per chunk, the text index each window belongs to
    owners: list[np.ndarray] = field(default_factory=list)


class OnnxClassifier:
    """Scores texts with a model directory's ONNX file; see the module docstring.

    Example::

        clf = OnnxClassifier(DEFAULT_MODEL_DIR)
        scores = clf.score(["you are wonderful", "i will hurt you"])  # [2, n_categories]
    """

    def __init__(
        self,
        model_dir: Path = DEFAULT_MODEL_DIR,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        variant: str = "auto",
        intra_op_threads: int = 0,
        streams: int = 0,
        cache_size: int = 0,
        trt_cache_dir: Path | None = None,
        chunk_windows: int = CHUNK_WINDOWS,
        chunk_tokens: int = CHUNK_TOKENS,
        sort_by_length: bool = True,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.card: ModelCard = load_card(self.model_dir)
        self.name, self.version = self.card.name, self.card.version
        self.categories = self.card.categories
        self.thresholds: Mapping[str, float] = dict(self.card.thresholds)
        self.cache = ScoreCache(cache_size)
        self.chunk_windows = chunk_windows
        self.chunk_tokens = chunk_tokens
        self.sort_by_length = sort_by_length
        self._tokenizer = self._load_tokenizer()
        self._cls = self._token_id("[CLS]")
        self._sep = self._token_id("[SEP]")
        if self._token_id("[PAD]") != PAD_ID:
            raise ModelLoadError(f"tokenizer's [PAD] id is not {PAD_ID}")
        threads = intra_op_threads or cpu_quota()
        wants_gpu = any(p in GPU_PROVIDERS for p in providers)
        self.streams = streams or (1 if wants_gpu else threads)
        self.session, self.variant = self._load_session(
            providers, variant, max(1, threads // self.streams), trt_cache_dir
        )
        self.provider = self.session.get_providers()[0]
        self._on_gpu = self.provider in GPU_PROVIDERS
        if self._on_gpu:
            self.streams = 1  # one device queue; IO binding keeps it busy
        #: runs a batch's chunks side by side; InferenceSession.run is thread-safe
        self._pool = (
            ThreadPoolExecutor(self.streams, thread_name_prefix="onnx-run")
            if self.streams > 1
            else None
        )
        self._input_names = {i.name for i in self.session.get_inputs()}

    # -- loading ---------------------------------------------------------------------------

    def _load_tokenizer(self) -> Tokenizer:
        path = self.model_dir / self.card.tokenizer
        try:
            return load_tokenizer(path)
        except Exception as exc:  # tokenizers raises its own Exception type
            raise ModelLoadError(f"cannot load tokenizer {path}: {exc}") from exc

    def _token_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise ModelLoadError(f"tokenizer has no {token} token")
        return int(token_id)

    def _variant_file(self, variant: str, providers: Sequence[str]) -> tuple[str, Path]:
        if variant == "auto":
            wants_gpu = any(
                p in GPU_PROVIDERS for p in providers if p in ort.get_available_providers()
            )
            order = ["fp16", "fp32", "int8"] if wants_gpu else ["int8", "fp32", "fp16"]
            variant = next((v for v in order if v in self.card.variants), order[0])
        name = self.card.variants.get(variant)
        if name is None:
            raise ModelLoadError(
                f"model has no {variant!r} variant (has {sorted(self.card.variants)}); "
                "set MODSTREAM_MODEL_VARIANT"
            )
        path = self.model_dir / name
        if not path.is_file():
            raise ModelLoadError(f"model file {path} is missing")
        return variant, path

    def _load_session(
        self,
        providers: Sequence[str],
        variant: str,
        threads: int,
        trt_cache_dir: Path | None,
    ) -> tuple[ort.InferenceSession, str]:
        available = set(ort.get_available_providers())
        usable = [p for p in providers if p in available]
        for p in providers:
            if p not in available:
                log.warning("execution provider %s is not available here; skipping it", p)
        if "CPUExecutionProvider" not in usable:
            usable.append("CPUExecutionProvider")
        variant, path = self._variant_file(variant, usable)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Fall back one provider at a time: a CUDA install without a GPU fails at
        # session creation, not at import, so a failure means "try the next one".
        last_error: Exception | None = None
        for start in range(len(usable)):
            chain = usable[start:]
            try:
                session = ort.InferenceSession(
                    str(path),
                    sess_options=options,
                    providers=self._with_options(chain, trt_cache_dir),
                )
            except Exception as exc:  # onnxruntime raises several unrelated types
                last_error = exc
                if chain[0] == "CPUExecutionProvider":
                    break
                log.warning("execution provider %s failed (%s); falling back", chain[0], exc)
                continue
            if session.get_providers()[0] != chain[0]:
                log.warning(
                    "execution provider %s was not used; running on %s",
                    chain[0],
                    session.get_providers()[0],
                )
            return session, variant
        raise ModelLoadError(f"cannot load {path}: {last_error}")

    @staticmethod
    def _with_options(
        chain: Sequence[str], trt_cache_dir: Path | None
    ) -> list[str | tuple[str, dict[str, str]]]:
        out: list[str | tuple[str, dict[str, str]]] = []
        for p in chain:
            if p == "TensorrtExecutionProvider":
                cache = str(trt_cache_dir or Path("/tmp/modstream-trt"))
                Path(cache).mkdir(parents=True, exist_ok=True)
                out.append(
                    (
                        p,
                        {
                            "trt_fp16_enable": "True",
                            "trt_engine_cache_enable": "True",
                            "trt_engine_cache_path": cache,
                        },
                    )
                )
            else:
                out.append(p)
        return out

    # -- scoring ---------------------------------------------------------------------------

    def windows(self, ids: Sequence[int]) -> list[list[int]]:
        """Cut token ids (no special tokens) into model windows with ``[CLS]``/``[SEP]``."""
        return split_windows(
            ids, self._cls, self._sep, self.card.max_tokens, self.card.window_stride
        )

    def prepare(self, texts: Sequence[str]) -> Prepared:
        normalized = [normalize(t) for t in texts]
        keys = [text_key(t) for t in normalized]
        scores = np.zeros((len(texts), len(self.categories)), dtype=np.float32)
        todo = []
        for i, key in enumerate(keys):
            row = self.cache.get(key)
            if row is None:
                todo.append(i)
            else:
                scores[i] = row
        prepared = Prepared(len(texts), keys, scores, np.asarray(todo, dtype=np.int64))
        if not todo:
            return prepared
        encodings = self._tokenizer.encode_batch(
            [normalized[i] for i in todo], add_special_tokens=False
        )
        windows: list[list[int]] = []
        owners: list[int] = []
        for i, enc in zip(todo, encodings, strict=True):
            for w in self.windows(enc.ids):
                windows.append(w)
                owners.append(i)
        prepared.chunks, prepared.owners = self._pack(windows, owners)
        return prepared

    def _pack(
        self, windows: Sequence[Sequence[int]], owners: Sequence[int]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[np.ndarray]]:
        """Padded chunks of windows (length-sorted, see :meth:`_chunks`) and each chunk's owners."""
        lengths = [len(w) for w in windows]
        order = (
            np.argsort(lengths, kind="stable") if self.sort_by_length else np.arange(len(windows))
        )
        owner_arr = np.asarray(owners, dtype=np.int64)
        chunks, chunk_owners = [], []
        for idx in self._chunks(order, lengths):
            feeds = pad_batch([windows[j] for j in idx])
            chunks.append((feeds["input_ids"], feeds["attention_mask"], feeds["token_type_ids"]))
            chunk_owners.append(owner_arr[idx])
        return chunks, chunk_owners

    def _chunks(self, order: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
        """Consecutive runs of ``order`` whose padded size stays within the token budget.

        With windows sorted by length, a chunk of short chat lines holds many
        windows and a chunk of long ones few, so each ONNX run does about the
        same work and almost none of it on padding.
        """
        chunks: list[np.ndarray] = []
        start = 0
        width = 0
        for pos, j in enumerate(order):
            width_if_added = max(width, lengths[j])
            count = pos - start + 1
            if pos > start and (
                count > self.chunk_windows or count * width_if_added > self.chunk_tokens
            ):
                chunks.append(order[start:pos])
                start, width_if_added = pos, lengths[j]
            width = width_if_added
        if start < len(order):
            chunks.append(order[start:])
        return chunks

    def infer(self, prepared: Prepared) -> np.ndarray:
        scores = prepared.scores
        if not len(prepared.todo):
            return scores
        window_max = self._run_chunks(prepared.chunks, prepared.owners, prepared.n_texts)
        scores[prepared.todo] = window_max[prepared.todo]
        for i in prepared.todo:
            self.cache.put(prepared.keys[i], scores[i].copy())
        return scores

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return self.infer(self.prepare(texts))

    def score_windows(
        self, windows: Sequence[Sequence[int]], owners: Sequence[int], n_owners: int
    ) -> np.ndarray:
        """``[n_owners, n_categories]``: per owner, the max over its already-cut windows.

        Serving after tokenising and windowing, without the cache: training
        uses it to score a teacher's windows exactly as the teacher is served.
        """
        chunks, chunk_owners = self._pack(windows, owners)
        return self._run_chunks(chunks, chunk_owners, n_owners)

    def _run_chunks(
        self,
        chunks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
        owners: Sequence[np.ndarray],
        n_owners: int,
    ) -> np.ndarray:
        """Run the chunks (side by side on the streams) and keep each owner's max per category."""
        if self._pool is not None and len(chunks) > 1:
            outs = list(self._pool.map(lambda chunk: self._run(*chunk), chunks))
        else:
            outs = [self._run(*chunk) for chunk in chunks]
        window_max = np.zeros((n_owners, len(self.categories)), dtype=np.float32)
        for out, chunk_owners in zip(outs, owners, strict=True):
            np.maximum.at(window_max, chunk_owners, out)
        return window_max

    def close(self) -> None:
        """Stop the stream threads (idempotent); the session itself needs no closing."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _run(self, input_ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        if self._on_gpu:
            return self._run_bound(feeds)
        return np.asarray(self.session.run(["scores"], feeds)[0], dtype=np.float32)

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """CUDA/TensorRT: IO binding copies inputs once and keeps outputs on the device until read."""
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        binding.bind_output("scores", "cuda", 0)
        self.session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)
