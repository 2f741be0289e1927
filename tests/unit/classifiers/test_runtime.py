"""The ONNX runtime against a real model directory (the ``model_dir`` fixture).

Scores themselves depend on the weights, so these tests check structure:
shapes and ranges, the window geometry, that a text's score is the max over
its windows, that batching, sorting and caching never change a score, and
that every way loading can fail is a ModelLoadError.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from classifiers.api import TextClassifier
from classifiers.card import ModelLoadError, load_card
from classifiers.normalize import normalize
from classifiers.runtime import OnnxClassifier, cpu_quota
from classifiers.windows import split_windows

RUNTIME_SOURCE = Path(__file__).resolve().parents[3] / "classifiers" / "runtime.py"
TOL = 1e-4

TEXTS = [
    "you are wonderful",
    "i will hurt you",
    "gg",
    "lol " * 60,
    "the quick brown fox jumps over the lazy dog " * 30,  # several windows
    "h.u.r.t",
    "",
    "   ",
    "emoji \U0001f600 and \u4e2d\u6587 and caf\u00e9",
]

# The shipped int8 graph is statically quantised (calibrated scales), so a
# text's score must not move with whatever else is in its chunk; a dynamic
# int8 graph fails these tests (its activation scales are per batch).


def load(model_dir: Path, **options: object) -> OnnxClassifier:
    options.setdefault("intra_op_threads", 1)
    return OnnxClassifier(model_dir, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clf(model_dir: Path) -> OnnxClassifier:
    """The model as served on CPU (variant ``auto``)."""
    return load(model_dir)


VariantLoader = Callable[..., OnnxClassifier]
_variants: dict[str, OnnxClassifier] = {}


@pytest.fixture(scope="module")
def variant_clf(model_dir: Path) -> Iterator[VariantLoader]:
    """``variant_clf("fp32", **options)``: a classifier per variant and options, loaded once."""

    def get(variant: str, **options: object) -> OnnxClassifier:
        if variant not in load_card(model_dir).variants:
            pytest.skip(f"the model has no {variant} variant")
        key = f"{variant}{sorted(options.items())}"
        if key not in _variants:
            _variants[key] = load(model_dir, variant=variant, **options)
        return _variants[key]

    yield get
    _variants.clear()


def long_token_ids(clf: OnnxClassifier, n: int) -> list[int]:
    text = " ".join(f"item{i} is fine" for i in range(n))
    ids = clf._tokenizer.encode(normalize(text), add_special_tokens=False).ids
    assert len(ids) >= n
    return ids[:n]


# -- scores ----------------------------------------------------------------------------


def test_output_shape_dtype_and_range(clf: OnnxClassifier) -> None:
    scores = clf.score(TEXTS)
    assert scores.shape == (len(TEXTS), len(clf.categories))
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert (scores >= 0).all() and (scores <= 1).all()


def test_no_texts(clf: OnnxClassifier) -> None:
    assert clf.score([]).shape == (0, len(clf.categories))


def test_it_is_a_text_classifier_described_by_its_card(
    clf: OnnxClassifier, model_dir: Path
) -> None:
    card = load_card(model_dir)
    assert isinstance(clf, TextClassifier)
    assert (clf.name, clf.version) == (card.name, card.version)
    assert clf.categories == card.categories
    assert clf.thresholds == card.thresholds
    assert clf.provider == "CPUExecutionProvider"


def test_prepare_then_infer_equals_score(clf: OnnxClassifier) -> None:
    np.testing.assert_array_equal(clf.infer(clf.prepare(TEXTS)), clf.score(TEXTS))


def test_scores_are_deterministic(clf: OnnxClassifier) -> None:
    np.testing.assert_array_equal(clf.score(TEXTS), clf.score(TEXTS))


def test_obfuscated_and_plain_text_score_the_same(clf: OnnxClassifier) -> None:
    a, b = clf.score(["k1ll y\u200bou", "kill you"])
    np.testing.assert_array_equal(a, b)


# -- windows ---------------------------------------------------------------------------


def test_a_1000_token_text_is_cut_into_covering_windows(clf: OnnxClassifier) -> None:
    ids = long_token_ids(clf, 1000)
    windows = clf.windows(ids)
    max_tokens, stride = clf.card.max_tokens, clf.card.window_stride
    assert len(windows) > 1000 // max_tokens
    covered: set[int] = set()
    for k, w in enumerate(windows):
        assert len(w) <= max_tokens
        assert w[0] == clf._cls and w[-1] == clf._sep
        start = k * stride
        assert w[1:-1] == ids[start : start + max_tokens - 2]  # contiguous, stride apart
        covered.update(range(start, start + len(w) - 2))
    assert covered == set(range(len(ids)))
    assert len(windows[-1]) - 2 + (len(windows) - 1) * stride == len(ids)  # last one ends it


def test_short_texts_have_one_window(clf: OnnxClassifier) -> None:
    span = clf.card.max_tokens - 2
    assert clf.windows([]) == [[clf._cls, clf._sep]]
    assert clf.windows(list(range(span))) == [[clf._cls, *range(span), clf._sep]]
    assert len(clf.windows(list(range(span + 1)))) == 2


@pytest.mark.parametrize(("max_tokens", "stride"), [(128, 96), (16, 14), (32, 5), (10, 1)])
def test_runtime_windows_equal_training_windows(
    clf: OnnxClassifier, monkeypatch: pytest.MonkeyPatch, max_tokens: int, stride: int
) -> None:
    card = clf.card.model_copy(update={"max_tokens": max_tokens, "window_stride": stride})
    monkeypatch.setattr(clf, "card", card)
    for n in range(0, 4 * max_tokens):
        ids = list(range(1000, 1000 + n))
        expected = split_windows(ids, clf._cls, clf._sep, max_tokens, stride)
        assert clf.windows(ids) == expected, n


def test_long_text_windows_reach_the_model(clf: OnnxClassifier) -> None:
    text = "the quick brown fox jumps over the lazy dog " * 60
    prepared = clf.prepare([text])
    n_windows = sum(len(owners) for owners in prepared.owners)
    ids = clf._tokenizer.encode(normalize(text), add_special_tokens=False).ids
    assert n_windows == len(clf.windows(ids)) > 1
    for input_ids, mask, types in prepared.chunks:
        assert input_ids.shape[1] <= clf.card.max_tokens
        assert input_ids.dtype == mask.dtype == types.dtype == np.int64
        assert not types.any()


@pytest.mark.parametrize("variant", ["int8", "fp16"])
def test_a_text_scores_the_max_over_its_windows(variant_clf: VariantLoader, variant: str) -> None:
    clf: OnnxClassifier = variant_clf(variant)
    text = "we had a lovely picnic in the park and the weather was great. " * 25
    text += "i am going to find you and kill you."
    ids = clf._tokenizer.encode(normalize(text), add_special_tokens=False).ids
    windows = clf.windows(ids)
    assert len(windows) > 2
    alone = []
    for w in windows:
        arr = np.asarray([w], dtype=np.int64)
        alone.append(clf._run(arr, np.ones_like(arr), np.zeros_like(arr))[0])
    per_window = np.stack(alone)
    np.testing.assert_allclose(clf.score([text])[0], per_window.max(axis=0), atol=TOL)
    # and the last window (the threat) is one of them, scored in full
    np.testing.assert_allclose(
        clf.score([text])[0] >= per_window[-1] - TOL, np.ones(len(clf.categories), bool)
    )


# -- batching never changes a score ----------------------------------------------------


@pytest.mark.parametrize("variant", ["int8", "fp16"])
def test_scores_do_not_depend_on_batch_neighbours(variant_clf: VariantLoader, variant: str) -> None:
    clf: OnnxClassifier = variant_clf(variant)
    together = clf.score(TEXTS)
    alone = np.stack([clf.score([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=TOL)


@pytest.mark.parametrize("variant", ["int8", "fp16"])
def test_sorting_by_length_does_not_change_scores(variant_clf: VariantLoader, variant: str) -> None:
    # Tiny chunks, so that sorting really changes which windows share a padded chunk.
    sorted_clf: OnnxClassifier = variant_clf(variant, chunk_windows=3)
    plain: OnnxClassifier = variant_clf(variant, chunk_windows=3, sort_by_length=False)
    texts = list(reversed(TEXTS)) + ["a", "a much longer line of chat text " * 5, "b c"]
    np.testing.assert_allclose(sorted_clf.score(texts), plain.score(texts), atol=TOL)


def test_streams_run_chunks_side_by_side_with_the_same_scores(model_dir: Path) -> None:
    # Tiny chunks give a batch many chunks; two streams must run them on two
    # threads and put every window's score back on its own text.
    texts = list(reversed(TEXTS)) + ["a", "a much longer line of chat text " * 5, "b c"]
    one = load(model_dir, chunk_windows=2, streams=1)
    two = load(model_dir, chunk_windows=2, intra_op_threads=2, streams=2)
    try:
        assert two.streams == 2 and len(two.prepare(texts).chunks) > 2
        np.testing.assert_allclose(two.score(texts), one.score(texts), atol=TOL)
    finally:
        two.close()
        two.close()  # idempotent


def test_cpu_streams_default_to_one_per_thread(model_dir: Path) -> None:
    clf = load(model_dir, intra_op_threads=2)
    try:
        assert clf.streams == 2
    finally:
        clf.close()
    assert load(model_dir).streams == 1


def test_int8_batch_effect_is_small(variant_clf: VariantLoader) -> None:
    # A coarse guard that holds even for a dynamic-int8 graph (whose scores
    # move with the batch: 0.017 on the dev model); the shipped static graph
    # is held to exact equality by test_scores_do_not_depend_on_batch_neighbours.
    clf: OnnxClassifier = variant_clf("int8")
    together = clf.score(TEXTS)
    alone = np.stack([clf.score([t])[0] for t in TEXTS])
    assert np.abs(together - alone).max() < 0.05


def test_padding_does_not_change_a_score(variant_clf: VariantLoader) -> None:
    clf: OnnxClassifier = variant_clf("int8")
    short = "you are a terrible person"
    together = clf.score([short, "padding partner " * 40])[0]
    np.testing.assert_allclose(together, clf.score([short])[0], atol=TOL)


# -- the dedupe cache -----------------------------------------------------------------


def test_cache_returns_identical_rows_and_counts_hits(model_dir: Path) -> None:
    clf = load(model_dir, cache_size=16)
    first = clf.score(["hello there", "go away"])
    assert (clf.cache.hits, clf.cache.misses) == (0, 2)
    again = clf.score(["go away", "new text", "hello there"])
    assert clf.cache.hits == 2
    np.testing.assert_array_equal(again[0], first[1])
    np.testing.assert_array_equal(again[2], first[0])
    # normalisation happens before the key: an obfuscated spelling hits too
    clf.score(["g\u200bo  away"])
    assert clf.cache.hits == 3
    # a fully cached batch does not run the model at all
    prepared = clf.prepare(["hello there"])
    assert prepared.chunks == [] and len(prepared.todo) == 0
    np.testing.assert_array_equal(clf.infer(prepared)[0], first[0])


def test_cache_rows_are_not_aliased(model_dir: Path) -> None:
    clf = load(model_dir, cache_size=4)
    out = clf.score(["alias check"])
    out[0, :] = 42.0  # a caller scribbling on its result must not poison the cache
    assert clf.score(["alias check"]).max() <= 1.0


# -- loading ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wanted", ["CUDAExecutionProvider", "TensorrtExecutionProvider", "NoSuchExecutionProvider"]
)
def test_unavailable_provider_falls_back_to_cpu_with_a_warning(
    model_dir: Path, caplog: pytest.LogCaptureFixture, wanted: str
) -> None:
    import onnxruntime as ort

    if wanted in ort.get_available_providers():
        pytest.skip(f"{wanted} is available here; the fallback cannot be exercised")
    with caplog.at_level(logging.WARNING, logger="classifiers.runtime"):
        clf = load(model_dir, providers=[wanted, "CPUExecutionProvider"])
    assert clf.provider == "CPUExecutionProvider"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(wanted in r.getMessage() for r in warnings)
    assert clf.score(["still works"]).shape == (1, len(clf.categories))


def test_cpu_is_appended_when_not_asked_for(model_dir: Path) -> None:
    assert load(model_dir, providers=["NoSuchExecutionProvider"]).provider == "CPUExecutionProvider"


def test_unknown_variant(model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="no 'bf8' variant.*MODSTREAM_MODEL_VARIANT"):
        load(model_dir, variant="bf8")


def small_copy(model_dir: Path, dest: Path) -> Path:
    """The card and tokenizer of ``model_dir``, with each ONNX file cut to 1 kB."""
    dest.mkdir()
    card = load_card(model_dir)
    shutil.copy(model_dir / "model_card.json", dest)
    shutil.copy(model_dir / card.tokenizer, dest)
    for name in set(card.variants.values()):
        with (model_dir / name).open("rb") as f:
            (dest / name).write_bytes(f.read(1024))
    return dest


def test_corrupt_onnx_file(model_dir: Path, tmp_path: Path) -> None:
    broken = small_copy(model_dir, tmp_path / "model")
    with pytest.raises(ModelLoadError, match=re.escape(str(broken))):
        load(broken)


def test_missing_onnx_file(model_dir: Path, tmp_path: Path) -> None:
    broken = small_copy(model_dir, tmp_path / "model")
    for f in broken.glob("*.onnx"):
        f.unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        load(broken)


def test_missing_or_corrupt_tokenizer(model_dir: Path, tmp_path: Path) -> None:
    broken = small_copy(model_dir, tmp_path / "model")
    tokenizer = broken / load_card(model_dir).tokenizer
    tokenizer.write_text("{")
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load(broken)
    tokenizer.unlink()
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load(broken)


def test_missing_model_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="MODSTREAM_MODEL_DIR"):
        load(tmp_path / "absent")


def test_loading_never_unpickles() -> None:
    source = RUNTIME_SOURCE.read_text()
    for forbidden in ("pickle", "torch", "joblib", "allow_pickle", "np.load("):
        assert forbidden not in source, forbidden


def test_cpu_quota_is_positive() -> None:
    assert cpu_quota() >= 1
