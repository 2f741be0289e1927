"""The worker process: a Faust app hosting the scoring pipeline and the HTTP views.

Faust owns what it is good at: the process lifecycle (signals, ordered
start and stop, exit codes), the web server and, later, stateful agents.
The scoring path does not go through Faust's per-event agents: it runs on
aiokafka's batch APIs in :class:`~stream.pipeline.ScoringPipeline` (see
``docs/benchmarks.md`` for why), hosted here as a ``mode.Service``.

Start order: web server, then the scoring service (Kafka clients, topics,
pipeline). Stop order, on SIGTERM: the pipeline drains and commits, then the
consumer leaves the group, then the producer flushes and closes.
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import faust
import mode
from aiokafka.errors import KafkaError
from faust.app.base import BootStrategy

from classifiers.api import TextClassifier
from stream.http import ModerationService, register_views
from stream.kafka import ensure_topics, make_consumer, make_producer
from stream.logs import configure_logging, get_logger
from stream.metrics import Metrics
from stream.pipeline import ScoringPipeline
from stream.policy import Policy
from stream.settings import Settings

log = get_logger(__name__)


CONNECT_TIMEOUT_S = 30.0
_AUTH_HINT = (
    "check MODSTREAM_SECURITY_PROTOCOL, MODSTREAM_SASL_MECHANISM, MODSTREAM_SASL_USERNAME "
    "and the password"
)


class _HostOnly(BootStrategy):
    """Faust's own consumer and producer stay off: the pipeline brings its own clients."""

    enable_kafka = False


class ModstreamApp(faust.App):
    BootStrategy = _HostOnly


class ScoringService(mode.Service):
    """Connects to Kafka (retrying until it can), runs the pipeline, stops it in order."""

    def __init__(
        self, settings: Settings, classifier: TextClassifier, metrics: Metrics, policy: Policy
    ) -> None:
        super().__init__()
        self.settings = settings
        self.classifier = classifier
        self.metrics = metrics
        self.policy = policy
        self.pipeline: ScoringPipeline | None = None
        self._producer: Any = None
        self._consumer: Any = None

    def is_ready(self) -> bool:
        return self.pipeline is not None and self.pipeline.ready

    @mode.Service.task
    async def _connect_and_supervise(self) -> None:
        kafka = self.settings.kafka
        delay = 0.5
        while not self.should_stop:
            try:
                # A TLS client against a plaintext listener waits forever: bound it.
                await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
                break
            except (KafkaError, TimeoutError, OSError) as exc:
                log.warning("kafka_connect_failed", error=type(exc).__name__, retry_in_s=delay)
            except Exception as exc:  # aiokafka reports bad SASL credentials as KeyError & co
                log.error("kafka_connect_rejected", error=type(exc).__name__, hint=_AUTH_HINT)
                self.metrics.errors.labels("connect").inc()
                await self._close_clients()
                await self.crash(RuntimeError(f"Kafka rejected the connection: {_AUTH_HINT}"))
                return
            self.metrics.errors.labels("connect").inc()
            self.pipeline = None
            await self._close_clients()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        if self.should_stop or self.pipeline is None:
            return
        await self.pipeline.start()
        log.info("worker_started", input_topic=kafka.input_topic, group_id=kafka.group_id)
        await self.pipeline.wait_stopping()
        if self.pipeline.failed and not self.should_stop:
            await self.crash(
                RuntimeError("a pipeline stage failed; exiting so the worker is restarted")
            )

    async def _connect(self) -> None:
        kafka = self.settings.kafka
        if kafka.create_topics:
            await ensure_topics(kafka)
        self._producer = make_producer(kafka)
        await self._producer.start()
        self._consumer = make_consumer(kafka)
        self.pipeline = ScoringPipeline(
            self.settings,
            self.classifier,
            self.metrics,
            self.policy,
            self._consumer,
            self._producer,
        )
        # Subscribe once, with the listener, before the consumer starts:
        # re-subscribing a started consumer races aiokafka's fetcher.
        self._consumer.subscribe([kafka.input_topic], listener=self.pipeline.rebalance_listener())
        await self._consumer.start()

    async def on_stop(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.stop()
        await self._close_clients()

    async def _close_clients(self) -> None:
        # Consumer before producer: leave the group only after the last commit.
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception as exc:  # closing a half-started client can raise anything
                    log.info("client_stop_failed", error=type(exc).__name__)
        self._consumer = self._producer = None


def build_app(
    settings: Settings, classifier: TextClassifier, policy: Policy, metrics: Metrics
) -> ModstreamApp:
    """The Faust app of one worker, with its scoring service and HTTP views attached."""
    app = ModstreamApp(
        f"{settings.kafka.group_id}-host",
        broker=f"kafka://{settings.kafka.bootstrap_servers.split(',')[0]}",
        web_enabled=True,
        web_host=settings.http.http_host,
        web_port=settings.http.http_port,
        datadir=tempfile.mkdtemp(prefix="modstream-faust-"),
        autodiscover=False,
    )
    scoring = ScoringService(settings, classifier, metrics, policy)
    app.add_dependency(scoring)
    metrics.model_info.labels(classifier.name, classifier.version, classifier.provider).set(1)
    watch = getattr(classifier, "cache", None)
    if watch is not None:
        metrics.watch_cache(lambda: (watch.hits, watch.misses))
    register_views(
        app,
        settings.http,
        metrics,
        ModerationService(classifier, policy),
        scoring.is_ready,
        f"{classifier.name}@{classifier.version}",
    )
    return app


def run_worker(app: ModstreamApp, settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; exits 0 after a clean drain, non-zero after a crash."""
    from faust.worker import Worker

    class _Worker(Worker):
        def _setup_logging(self) -> None:
            # Keep our JSON logs: Faust would install its own coloured handler.
            configure_logging(settings.logging.log_level, settings.logging.log_text)

    worker = _Worker(
        app, loglevel=settings.logging.log_level.lower(), quiet=True, redirect_stdouts=False
    )
    # Faust's start-up spinner writes a terminal escape ("\x1b[?25h") to stdout even
    # when it is not a terminal, which glues itself to the next JSON log line.
    worker.spinner = None
    worker.execute_from_commandline()
