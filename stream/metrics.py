"""Prometheus metrics, all ``modstream_*``; durations in seconds, counters ``_total``.

Labels are bounded by design: topics, partitions, categories, actions and
reasons. Nothing user-controlled (ids, text, keys) is ever a label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _CacheCollector(Collector):
    """Reads the classifier's cache counters at scrape time (the classifier knows no Prometheus)."""

    def __init__(self, stats: Callable[[], tuple[int, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        hits, misses = self._stats()
        yield CounterMetricFamily("modstream_cache_hits", "Dedupe cache hits.", value=hits)
        yield CounterMetricFamily("modstream_cache_misses", "Dedupe cache misses.", value=misses)


class Metrics:
    """The worker's metrics on their own registry (tests can run several workers in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "modstream_messages_in", "Records consumed.", ["topic"], registry=r
        )
        self.messages_out = Counter(
            "modstream_messages_out", "Records produced and acknowledged.", ["topic"], registry=r
        )
        self.flags = Counter(
            "modstream_flags",
            "Flagged messages by category and action.",
            ["category", "action"],
            registry=r,
        )
        self.dlq = Counter("modstream_dlq", "Dead letters by reason.", ["reason"], registry=r)
        self.batch_size = Histogram(
            "modstream_batch_size", "Messages per scored batch.", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "modstream_inference_seconds",
            "Model time per batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "modstream_end_to_end_latency_seconds",
            "Record timestamp to output acknowledged.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "modstream_queue_depth", "Items waiting in each internal queue.", ["queue"], registry=r
        )
        self.consumer_lag = Gauge(
            "modstream_consumer_lag",
            "Records behind the log end.",
            ["topic", "partition"],
            registry=r,
        )
        self.model_info = Gauge(
            "modstream_model_info",
            "The model being served.",
            ["name", "version", "provider"],
            registry=r,
        )
        self.ready = Gauge(
            "modstream_ready", "1 when the worker is assigned and flowing.", registry=r
        )
        self.errors = Counter("modstream_errors", "Errors by kind.", ["kind"], registry=r)
        self.commits = Counter("modstream_commits", "Offset commits.", registry=r)
        self.batches = Counter("modstream_batches", "Batches scored.", registry=r)

    def watch_cache(self, stats: Callable[[], tuple[int, int]]) -> None:
        self.registry.register(_CacheCollector(stats))
