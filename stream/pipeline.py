"""The scoring loop: fetch -> decode -> batch -> tokenise -> infer -> route -> produce -> ack -> commit.

Six small tasks joined by bounded queues, so each stage works while the
next one waits on I/O or on the model, and a slow stage stops the ones
before it instead of growing memory:

``_fetch``   ``getmany`` a chunk of records, decode each (bad ones become
             dead letters), hand them to the :class:`~stream.batcher.Batcher`.
``_prepare`` close a batch on size or time, tokenise it on the *prep* thread.
``_infer``   start the model on an *infer* thread (never the event loop); two
             batches may run at once, so the model's streams move on to the
             next batch's chunks while the last chunk of this one finishes.
``_route``   take the results in batch order, route them and queue the
             output records as batches.
``_ack``     wait for the broker's acks, in fetch order, then mark the
             batch's offsets done.
``_commit``  commit done offsets every ``commit_interval_ms``, off the hot path.

Delivery is at-least-once: see :meth:`ScoringPipeline.commit`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from classifiers.api import TextClassifier
from stream.batcher import Batcher, BatcherClosed
from stream.decode import Decoder, RecordRef, dead_letter
from stream.kafka import BatchedWriter, OutRecord
from stream.logs import get_logger
from stream.metrics import Metrics
from stream.offsets import OffsetTracker
from stream.policy import Policy
from stream.router import Entry, Router
from stream.schemas import DeadLetter
from stream.settings import Settings

log = get_logger(__name__)

#: How stale the last successful broker round trip may be before /readyz says no.
READY_STALE_S = 15.0
LAG_INTERVAL_S = 3.0
_END = object()
#: Batches in the model at once: two keep its streams busy across batch ends.
INFER_CONCURRENCY = 2


@dataclass(slots=True)
class _Scored:
    entries: list[Entry]
    records: list[OutRecord]
    futures: list[asyncio.Future[Any]]
    next_offsets: dict[TopicPartition, int]
    oldest_ts_ms: float


def score_with_split(
    classifier: TextClassifier, texts: Sequence[str], prepared: Any = None
) -> tuple[np.ndarray, dict[int, str]]:
    """Scores for ``texts`` (tokenised already when ``prepared`` is given).

    A batch that fails is split in halves and each half retried, down to
    single texts. Returns the scores (rows of failed texts are zeros) and
    ``{index: error}`` for texts that fail on their own: the caller sends
    those to the DLQ and the rest of the batch is scored as usual.
    """
    try:
        if prepared is None:
            prepared = classifier.prepare(texts)
        return classifier.infer(prepared), {}
    except Exception as exc:  # a model can fail in many ways; isolate the culprit
        if len(texts) == 1:
            zeros = np.zeros((1, len(classifier.categories)), np.float32)
            return zeros, {0: f"{type(exc).__name__}: {exc}"}
    mid = len(texts) // 2
    out = np.zeros((len(texts), len(classifier.categories)), np.float32)
    failed: dict[int, str] = {}
    for lo, hi in ((0, mid), (mid, len(texts))):
        scores, sub_failed = score_with_split(classifier, texts[lo:hi])
        out[lo:hi] = scores
        failed.update({lo + i: err for i, err in sub_failed.items()})
    return out, failed


def _timed_score(
    classifier: TextClassifier, texts: Sequence[str], prepared: Any
) -> tuple[np.ndarray, dict[int, str], float]:
    """:func:`score_with_split` plus its own run time (not the time queued behind another batch)."""
    started = time.perf_counter()
    scores, failed = score_with_split(classifier, texts, prepared)
    return scores, failed, time.perf_counter() - started


class ScoringPipeline:
    """Owns the consumer, the producer and the stages between them.

    Example::

        pipeline = ScoringPipeline(settings, classifier, metrics)
        await pipeline.start()      # joins the group and starts the stages
        ...
        await pipeline.stop()       # drains in-flight batches, commits, leaves the group
    """

    def __init__(
        self,
        settings: Settings,
        classifier: TextClassifier,
        metrics: Metrics,
        policy: Policy,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.metrics = metrics
        self.consumer = consumer
        self.producer = producer
        b = settings.batching
        self.decoder = Decoder(settings.limits.max_message_bytes, settings.limits.max_text_chars)
        self.router = Router(
            settings.kafka,
            policy,
            f"{classifier.name}@{classifier.version}",
            settings.policy.include_text_in_flagged,
        )
        self.writer = BatchedWriter(producer)
        self.offsets = OffsetTracker()
        self.batcher: Batcher[Entry] = Batcher(
            b.max_batch_size,
            b.max_batch_wait_ms / 1000.0,
            b.max_batch_size * b.max_inflight_batches,
        )
        self._to_infer: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self._to_route: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self._to_ack: asyncio.Queue[Any] = asyncio.Queue(maxsize=b.max_inflight_batches)
        self._prep_pool = ThreadPoolExecutor(1, thread_name_prefix="modstream-prep")
        self._infer_pool = ThreadPoolExecutor(
            INFER_CONCURRENCY, thread_name_prefix="modstream-infer"
        )
        self._tasks: list[asyncio.Task[None]] = []  # all stages
        self._flow: list[asyncio.Task[None]] = []  # the stages a drain waits for
        self._stopping = asyncio.Event()
        self._commit_wanted = asyncio.Event()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: Batches between the batcher and the ack stage, however the stages
        #: between them queue: the memory bound holds by construction (the
        #: batcher holds max_inflight_batches more).
        self._stage_slots = asyncio.Semaphore(b.max_inflight_batches + 2)
        self._broker_ok_at = 0.0
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        """Pass to ``consumer.subscribe``: drains and commits before partitions move."""
        return _Rebalance(self)

    async def start(self) -> None:
        """Start the stages; the consumer must be subscribed (with :meth:`rebalance_listener`) and started."""
        stages = (
            self._fetch,
            self._prepare,
            self._infer,
            self._route,
            self._ack,
            self._commit_loop,
            self._watch_lag,
        )
        self._tasks = [
            asyncio.create_task(stage(), name=f"modstream-{stage.__name__}") for stage in stages
        ]
        self._flow = self._tasks[:5]
        for task in self._tasks:
            task.add_done_callback(self._on_stage_done)
        self._started = True

    def _on_stage_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("stage_crashed", stage=task.get_name(), error=repr(task.exception()))
            self.metrics.errors.labels("stage_crash").inc()
            self._stopping.set()

    @property
    def ready(self) -> bool:
        """True when started, not stopping, and the broker answered recently."""
        fresh = time.monotonic() - self._broker_ok_at < READY_STALE_S
        return self._started and not self._stopping.is_set() and fresh

    @property
    def failed(self) -> bool:
        """A stage died: the process should exit non-zero so it is restarted."""
        return any(t.done() and not t.cancelled() and t.exception() for t in self._tasks)

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Graceful stop: stop fetching, finish and ack what is in flight, commit, close threads.

        Bounded by ``drain_timeout_s``; whatever is not acked by then is not
        committed and will be scored again by the next owner of its partition.
        """
        self._stopping.set()
        await self.batcher.close()
        try:
            await asyncio.wait_for(
                asyncio.gather(*self._flow, return_exceptions=True),
                self.settings.batching.drain_timeout_s,
            )
        except TimeoutError:
            log.warning("drain_timeout", inflight=self._inflight)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.commit()
        self._prep_pool.shutdown(wait=False, cancel_futures=True)
        self._infer_pool.shutdown(wait=False, cancel_futures=True)
        log.info(
            "pipeline_stopped",
            committed={
                f"{tp.topic}/{tp.partition}": o for tp, o in self.offsets.last_committed().items()
            },
        )

    # -- stages ---------------------------------------------------------------------------

    async def _fetch(self) -> None:
        topic_label = self.metrics.messages_in.labels(self.settings.kafka.input_topic)
        max_records = self.settings.kafka.fetch_max_records
        while not self._stopping.is_set():
            try:
                chunks = await self.consumer.getmany(timeout_ms=100, max_records=max_records)
            except KafkaError as exc:
                log.warning("fetch_failed", error=repr(exc))
                self.metrics.errors.labels("fetch").inc()
                await asyncio.sleep(0.5)
                continue
            if not chunks:
                continue
            self._broker_ok_at = time.monotonic()
            entries: list[Entry] = []
            decode = self.decoder.decode
            for tp, records in chunks.items():
                for r in records:
                    ref = RecordRef(tp.topic, tp.partition, r.offset, r.key, r.timestamp)
                    decoded = decode(r.value, ref)
                    if isinstance(decoded, DeadLetter):
                        entries.append(Entry(ref, None, decoded))
                    else:
                        entries.append(Entry(ref, decoded))
            topic_label.inc(len(entries))
            self._inflight += len(entries)
            self._idle.clear()
            try:
                await self.batcher.put_many(entries)
            except BatcherClosed:
                # Stopping: these records stay uncommitted and are fetched again later.
                self._inflight -= len(entries)
                return
            self.metrics.queue_depth.labels("batcher").set(len(self.batcher))

    async def _prepare(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._stage_slots.acquire()  # released by _ack
                batch = await self.batcher.next_batch()
                if batch is None:
                    self._stage_slots.release()
                    break
                texts = [e.message.text for e in batch if e.message is not None]
                prepared = None
                if texts:
                    try:
                        prepared = await loop.run_in_executor(
                            self._prep_pool, self.classifier.prepare, texts
                        )
                    except Exception as exc:  # tokenising failed: _infer splits and isolates
                        log.warning("prepare_failed", error=type(exc).__name__, batch=len(texts))
                await self._to_infer.put((batch, texts, prepared))
                self.metrics.queue_depth.labels("infer").set(self._to_infer.qsize())
        finally:
            await self._to_infer.put(_END)

    async def _infer(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (item := await self._to_infer.get()) is not _END:
                batch, texts, prepared = item
                running = None
                if texts:
                    running = loop.run_in_executor(
                        self._infer_pool, _timed_score, self.classifier, texts, prepared
                    )
                # the queue holds one batch while _route awaits another: two in the model
                await self._to_route.put((batch, texts, running))
        finally:
            await self._to_route.put(_END)

    async def _route(self) -> None:
        try:
            while (item := await self._to_route.get()) is not _END:
                batch, texts, running = item
                scores = np.zeros((0, len(self.classifier.categories)), np.float32)
                if running is not None:
                    scores, failed, seconds = await running
                    self.metrics.inference_seconds.observe(seconds)
                    self.metrics.batch_size.observe(len(texts))
                    if failed:
                        scores = self._dead_letter_failures(batch, scores, failed)
                routed = self.router.route(batch, scores)
                futures = await self.writer.send(routed.records)
                for triggered, action in routed.flagged:
                    for category in triggered:
                        self.metrics.flags.labels(category, action).inc()
                next_offsets: dict[TopicPartition, int] = {}
                for e in batch:
                    next_offsets[TopicPartition(e.ref.topic, e.ref.partition)] = e.ref.offset + 1
                oldest = min(e.ref.timestamp_ms for e in batch)
                await self._to_ack.put(
                    _Scored(batch, routed.records, futures, next_offsets, oldest)
                )
                self.metrics.queue_depth.labels("ack").set(self._to_ack.qsize())
        finally:
            await self._to_ack.put(_END)

    def _dead_letter_failures(
        self, batch: list[Entry], scores: np.ndarray, failed: dict[int, str]
    ) -> np.ndarray:
        """Turn entries whose text failed inference into dead letters; drop their score rows."""
        keep = []
        index = 0
        for e in batch:
            if e.message is None:
                continue
            if index in failed:
                raw = e.message.model_dump_json().encode()
                e.dead = dead_letter(e.ref, raw, "inference_error", failed[index])
                e.message = None
            else:
                keep.append(index)
            index += 1
        log.warning("inference_failed", dead_letters=len(failed), batch=index)
        self.metrics.errors.labels("inference").inc(len(failed))
        return scores[keep]

    async def _ack(self) -> None:
        while (item := await self._to_ack.get()) is not _END:
            scored: _Scored = item
            await self._await_acks(scored)
            self._stage_slots.release()
            self.offsets.mark_done(scored.next_offsets)
            self._inflight -= len(scored.entries)
            if self._inflight <= 0:
                self._idle.set()
            self._commit_wanted.set()
            self.metrics.batches.inc()
            now_ms = time.time() * 1000.0
            self.metrics.end_to_end_seconds.observe(max(0.0, now_ms - scored.oldest_ts_ms) / 1000.0)
            counts: dict[str, int] = {}
            for rec in scored.records:
                counts[rec.topic] = counts.get(rec.topic, 0) + 1
            for topic, n in counts.items():
                self.metrics.messages_out.labels(topic).inc(n)
            for e in scored.entries:
                if e.dead is not None:
                    self.metrics.dlq.labels(e.dead.reason).inc()

    async def _await_acks(self, scored: _Scored) -> None:
        """Wait until the broker has every output of a batch; re-send on failure, never skip."""
        delay = 0.2
        while True:
            results = await asyncio.gather(*scored.futures, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if not errors:
                return
            self.metrics.errors.labels("produce").inc()
            log.warning(
                "produce_failed_retrying", error=repr(errors[0]), records=len(scored.records)
            )
            if self._stopping.is_set() and delay > 5:
                raise RuntimeError(
                    "outputs could not be produced while stopping; offsets stay uncommitted"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            try:
                scored.futures = await self.writer.send(scored.records)
            except KafkaError as exc:
                log.warning("produce_requeue_failed", error=repr(exc))
                scored.futures = [_failed_future(exc)]

    async def _commit_loop(self) -> None:
        interval = self.settings.batching.commit_interval_ms / 1000.0
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self.commit()
            await asyncio.sleep(interval)

    async def commit(self) -> None:
        """Commit offsets whose outputs are all acknowledged by the broker.

        The rule: an input offset is committed only after every output it
        produced (score, flag or dead letter) was acked with ``acks=all``; the
        ack stage marks offsets done in fetch order, so ``pending()`` never
        includes an offset with an unacked output below it.
        """
        offsets = self.offsets.pending()
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # Partitions moved to another worker: it resumes from the last commit.
            log.warning("commit_rejected", error=type(exc).__name__, partitions=len(offsets))
            self.metrics.errors.labels("commit").inc()
            return
        except KafkaError as exc:
            log.warning("commit_failed", error=repr(exc))
            self.metrics.errors.labels("commit").inc()
            self._commit_wanted.set()
            return
        self.offsets.committed(offsets)
        self._broker_ok_at = time.monotonic()
        self.metrics.commits.inc()

    async def _watch_lag(self) -> None:
        """Every few seconds: ask the broker for end offsets (lag, and proof it is alive)."""
        topic = self.settings.kafka.input_topic
        while True:
            parts = self.consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            try:
                ends = await asyncio.wait_for(self.consumer.end_offsets(tps), 5.0) if tps else {}
                if tps:
                    self._broker_ok_at = time.monotonic()
                for tp in self.consumer.assignment():
                    if tp in ends:
                        position = await self.consumer.position(tp)
                        self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                            max(0, ends[tp] - position)
                        )
            except (TimeoutError, KafkaError, IllegalStateError) as exc:
                log.info("lag_probe_failed", error=type(exc).__name__)
            self.metrics.ready.set(1 if self.ready else 0)
            await asyncio.sleep(LAG_INTERVAL_S)

    # -- rebalancing ----------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> None:
        """Wait until everything fetched so far is acked, then commit it."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("drain_incomplete", inflight=self._inflight)
        await self.commit()


def _failed_future(exc: BaseException) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_exception(exc)
    return fut


class _Rebalance(ConsumerRebalanceListener):
    """Before partitions move: finish and commit what was fetched from them."""

    def __init__(self, pipeline: ScoringPipeline) -> None:
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self.pipeline.drain(self.pipeline.settings.batching.drain_timeout_s)
            self.pipeline.offsets.forget(revoked)
            log.info(
                "partitions_revoked",
                partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in revoked),
            )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.pipeline._broker_ok_at = time.monotonic()
        log.info(
            "partitions_assigned",
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )
