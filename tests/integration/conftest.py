"""Fixtures for the integration suite: one real Tansu broker, real worker processes.

* ``broker``: one embedded Tansu per session on a free port; every test gets
  its own topics and consumer group (``topics``), so tests stay independent.
  Tests that damage a broker (SIGSTOP) take a ``private_broker`` instead.
* ``workers``: starts ``python -m stream.cli worker`` processes configured by
  environment only, each logging to its own file under ``tmp_path``; they
  are killed at teardown and their log tails are printed when a test fails.
* Model: ``model_dir`` from ``tests/conftest.py`` (``MODSTREAM_TEST_MODEL_DIR``
  when set, else the bundled model); it reaches workers as ``MODSTREAM_MODEL_DIR``.

Every test here is marked ``integration``; fault-injection modules add
``faults``; long cases are ``slow`` and run only with ``--run-slow`` (or
``MODSTREAM_RUN_SLOW=1``). The option is registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_helpers import (
    Topics,
    Worker,
    WorkerFactory,
    create_topics,
    worker_env,
)

from stream.broker import EmbeddedBroker

HERE = Path(__file__).resolve().parent


def _run_slow(config: pytest.Config) -> bool:
    try:
        flag = bool(config.getoption("--run-slow"))
    except ValueError:
        flag = False
    return flag or os.environ.get("MODSTREAM_RUN_SLOW", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = _run_slow(config)
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow (or MODSTREAM_RUN_SLOW=1)")
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.integration)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def private_broker() -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, for faults that would hurt other tests (SIGSTOP)."""
    with EmbeddedBroker() as b:
        yield b


def _new_topics(request: pytest.FixtureRequest, bootstrap: str) -> Topics:
    topics = Topics.unique(request.node.name.replace("[", "-").replace("]", "").replace("_", "-"))
    asyncio.run(create_topics(bootstrap, [topics.input, *topics.outputs]))
    return topics


@pytest.fixture
def topics(request: pytest.FixtureRequest, broker: EmbeddedBroker) -> Topics:
    """Input, output topics (4 partitions each) and a group id used by this test only."""
    return _new_topics(request, broker.bootstrap_servers)


@pytest.fixture
def private_topics(request: pytest.FixtureRequest, private_broker: EmbeddedBroker) -> Topics:
    return _new_topics(request, private_broker.bootstrap_servers)


def _worker_factory(
    request: pytest.FixtureRequest, tmp_path: Path, model_dir: Path, bootstrap: str, topics: Topics
) -> Iterator[WorkerFactory]:
    started: list[Worker] = []

    def start(name: str | None = None, **env: str) -> Worker:
        name = name or f"worker{len(started) + 1}"
        worker = Worker(worker_env(bootstrap, topics, model_dir, **env), tmp_path / f"{name}.log")
        started.append(worker)
        return worker

    yield start
    failed = any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    for worker in started:
        worker.close()
        if failed:
            print(f"\n--- {worker.log_path.name} (pid {worker.pid}), last lines ---")
            print(worker.log_tail(60))


@pytest.fixture
def workers(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    model_dir: Path,
    broker: EmbeddedBroker,
    topics: Topics,
) -> Iterator[WorkerFactory]:
    """``workers(name=None, **MODSTREAM_env)`` starts a worker on this test's topics."""
    yield from _worker_factory(request, tmp_path, model_dir, broker.bootstrap_servers, topics)


@pytest.fixture
def private_workers(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    model_dir: Path,
    private_broker: EmbeddedBroker,
    private_topics: Topics,
) -> Iterator[WorkerFactory]:
    yield from _worker_factory(
        request, tmp_path, model_dir, private_broker.bootstrap_servers, private_topics
    )
