"""Fixtures shared by every test directory.

``model_dir`` is the model the runtime, CLI and integration tests load: the
bundled one, or ``MODSTREAM_TEST_MODEL_DIR`` (any directory with the same
I/O contract). A missing model is a failure, not a skip: the tests that need
it are the ones that prove serving works.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL_DIR = REPO_ROOT / "classifiers" / "models" / "modstream-minilm"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (long fault-injection runs)",
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The model directory under test (``MODSTREAM_TEST_MODEL_DIR`` or the bundled one)."""
    return Path(os.environ.get("MODSTREAM_TEST_MODEL_DIR", BUNDLED_MODEL_DIR))
