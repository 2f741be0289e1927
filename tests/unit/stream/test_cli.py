"""The CLI: classify prints JSON lines; start-up failures print one line and exit 2."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from classifiers.api import to_result
from classifiers.runtime import OnnxClassifier
from stream.cli import EXIT_STARTUP, main


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MODSTREAM_") and name != "MODSTREAM_TEST_MODEL_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("MODSTREAM_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("MODSTREAM_INTRA_OP_THREADS", "1")


def json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines()]


def expected_results(model_dir: Path, texts: list[str]) -> list[dict[str, object]]:
    clf = OnnxClassifier(model_dir, intra_op_threads=1)
    return [to_result(row, clf.categories, clf.thresholds) for row in clf.score(texts)]


def assert_same(got: dict[str, object], want: dict[str, object]) -> None:
    assert got["flagged"] == want["flagged"]
    assert got["categories"] == want["categories"]
    assert got["category_scores"] == pytest.approx(want["category_scores"], abs=1e-5)


@pytest.mark.usefixtures("env")
def test_classify_one_text(capsys: pytest.CaptureFixture[str], model_dir: Path) -> None:
    assert main(["classify", "you are wonderful"]) == 0
    out, err = capsys.readouterr()
    (result,) = json_lines(out)
    assert set(result) == {"model", "flagged", "categories", "category_scores"}
    card = orjson.loads((model_dir / "model_card.json").read_bytes())
    assert result["model"] == f"{card['name']}@{card['version']}"
    assert list(result["category_scores"]) == card["categories"]  # type: ignore[call-overload]
    assert_same(result, expected_results(model_dir, ["you are wonderful"])[0])


@pytest.mark.usefixtures("env")
def test_classify_stdin_json_lines_in_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    texts = ["first message", "i will find you", "", "gg", "a much longer third line " * 20]
    lines = [orjson.dumps({"text": t, "message_id": str(i)}).decode() for i, t in enumerate(texts)]
    monkeypatch.setattr(
        sys, "stdin", io.StringIO("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")
    )
    assert main(["classify"]) == 0
    results = json_lines(capsys.readouterr().out)
    assert len(results) == len(texts)
    for got, want in zip(results, expected_results(model_dir, texts), strict=True):
        assert_same(got, want)


@pytest.mark.usefixtures("env")
def test_classify_small_batches_keep_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"line {i}" for i in range(5)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f'{{"text": "{t}"}}\n' for t in texts)))
    assert main(["classify", "--batch-size", "2"]) == 0
    assert len(json_lines(capsys.readouterr().out)) == 5


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("bad", "expected"),
    [("not json", "stdin line 2 is not JSON"), ('{"txt": 1}', 'no string "text"')],
)
def test_classify_bad_stdin_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, bad: str, expected: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f'{{"text": "fine"}}\n{bad}\n{{"text": "x"}}\n'))
    assert main(["classify"]) == EXIT_STARTUP
    out, err = capsys.readouterr()
    assert len(json_lines(out)) == 1  # what came before the bad line is still answered
    assert len(err.strip().splitlines()) == 1
    assert expected in err
    assert err.startswith("modstream: error: ")


@pytest.mark.usefixtures("env")
def test_classify_without_a_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODSTREAM_MODEL_DIR", "/nonexistent/model")
    assert main(["classify", "hi"]) == EXIT_STARTUP
    out, err = capsys.readouterr()
    assert out == ""
    assert "/nonexistent/model" in err
    assert len(err.strip().splitlines()) == 1


def run_cli(repo_root: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        cwd=repo_root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_with_a_bad_setting_exits_2_naming_it(repo_root: Path) -> None:
    proc = run_cli(repo_root, ["worker"], MODSTREAM_MAX_BATCH_SIZE="-1")
    assert proc.returncode == EXIT_STARTUP
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "MODSTREAM_MAX_BATCH_SIZE" in lines[0]
    assert "-1" in lines[0]


def test_worker_with_a_missing_model_exits_2_naming_the_path(repo_root: Path) -> None:
    proc = run_cli(repo_root, ["worker"], MODSTREAM_MODEL_DIR="/nonexistent")
    assert proc.returncode == EXIT_STARTUP
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "/nonexistent" in lines[0]
    assert "MODSTREAM_MODEL_DIR" in lines[0]
