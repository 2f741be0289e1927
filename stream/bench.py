"""``modstream bench``: throughput and latency of the model, the plumbing and the whole path, in one run.

Every figure comes from this one run on this machine, so ratios between
them are meaningful even on a noisy host:

- ``model_only_msgs_per_s``: the shipped CPU model on the bundled demo texts,
  in batches of ``max_batch_size``, dedupe cache off; plus the baselines
  ``batch_size_1_msgs_per_s`` and ``unsorted_msgs_per_s`` (no length sorting).
- ``null_pipeline_msgs_per_s``: a real worker process whose classifier does
  no work, through the embedded broker: the plumbing's ceiling.
- ``end_to_end_msgs_per_s``: a real worker with the model, cache off:
  produce, consume, score, produce, read the scores topic back.
- ``latency_ms``: p50/p99 from produce to score read back, at 25%, 50% and
  90% of the measured end-to-end capacity.
- ``peak_rss_mb``: the model worker's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from stream.broker import EmbeddedBroker, free_port
from stream.demo import read_records, start_worker, stop_worker, wait_ready, worker_env
from stream.kafka import ensure_topics
from stream.settings import KafkaSettings, load_settings


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``): the same instance type can be Intel or AMD."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def demo_texts() -> list[str]:
    texts = []
    for raw in read_records():
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
            texts.append(item["text"])
    return texts


def time_model(clf: Any, texts: list[str], batch_size: int, min_s: float) -> float:
    """Messages per second scoring ``texts`` in batches, repeated for at least ``min_s``."""
    clf.score(texts[:batch_size])  # warm-up: allocations, kernel choice
    done = 0
    started = time.perf_counter()
    while True:
        for i in range(0, len(texts), batch_size):
            clf.score(texts[i : i + batch_size])
            done += len(texts[i : i + batch_size])
            if time.perf_counter() - started > min_s and done >= batch_size:
                return done / (time.perf_counter() - started)


def model_only(model_dir: Path, batch_size: int, quick: bool) -> dict[str, Any]:
    from classifiers.api import load_classifier

    texts = demo_texts()
    clf = load_classifier(model_dir, cache_size=0)
    unsorted = load_classifier(model_dir, cache_size=0, sort_by_length=False)
    min_s = 5.0 if quick else 15.0
    full = [time_model(clf, texts, batch_size, min_s)]
    out = {
        "unsorted_msgs_per_s": round(time_model(unsorted, texts, batch_size, min_s), 1),
        "batch_size_1_msgs_per_s": round(time_model(clf, texts[:400], 1, min_s / 2), 1),
    }
    full.append(time_model(clf, texts, batch_size, min_s))
    full_batch_s = []
    for i in range(0, min(len(texts), batch_size * 20), batch_size):
        t = time.perf_counter()
        clf.score(texts[i : i + batch_size])
        full_batch_s.append(time.perf_counter() - t)
    return {
        "model_only_msgs_per_s": round(max(full), 1),
        **out,
        "model": f"{clf.name}@{clf.version}",
        "variant": getattr(clf, "variant", None),
        "provider": clf.provider,
        "inference_streams": getattr(clf, "streams", 1),
        "full_batch_inference_ms_p99": round(float(np.percentile(full_batch_s, 99)) * 1000, 1),
        "mean_tokens": round(float(np.mean([len(t.split()) for t in texts])) * 1.3, 1),
    }


def _message(i: int, text: str) -> bytes:
    return orjson.dumps({"message_id": f"b-{i}", "text": text, "conversation_id": f"c-{i % 97}"})


async def _run_load(
    bootstrap: str, kafka: KafkaSettings, values: list[bytes], rate: float
) -> tuple[float, list[float]]:
    """Produce ``values`` (at ``rate``/s, or flat out when 0); read scores back.

    Returns (messages per second from first send to last score, latencies in ms).
    """
    consumer = AIOKafkaConsumer(
        kafka.scores_topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        group_id=None,
        fetch_max_bytes=32 * 1024 * 1024,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_batch_size=512 * 1024)
    await producer.start()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    last_seen = 0.0

    async def read() -> None:
        nonlocal last_seen
        while len(latencies) < len(values):
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    mid = orjson.loads(r.value)["message_id"]
                    t = sent_at.get(mid)
                    if t is not None:
                        latencies.append((now - t) * 1000.0)
                        last_seen = now

    reader = asyncio.create_task(read())
    started = time.perf_counter()
    futures = []
    for i, value in enumerate(values):
        if rate > 0:
            wait = started + i / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        sent_at[f"b-{i}"] = time.perf_counter()
        futures.append(
            await producer.send(kafka.input_topic, value=value, key=f"c-{i % 97}".encode())
        )
    await asyncio.gather(*futures)
    try:
        await asyncio.wait_for(reader, 300)
    finally:
        await producer.stop()
        await consumer.stop()
    return len(values) / (last_seen - started), latencies


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's memory from ``/proc/<pid>/status``: ``VmRSS`` now, ``VmHWM`` its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def through_broker(
    bootstrap: str, classifier: str, n: int, latency_points: list[float] | None
) -> dict[str, Any]:
    """One worker process (model or null classifier), capacity and optional latency points."""
    suffix = f"{classifier}-{int(time.time() * 1000)}"
    kafka = load_settings(environ={}).kafka.model_copy(
        update={
            "bootstrap_servers": bootstrap,
            "input_topic": f"bench.in.{suffix}",
            "scores_topic": f"bench.scores.{suffix}",
            "flagged_topic": f"bench.flagged.{suffix}",
            "dlq_topic": f"bench.dlq.{suffix}",
        }
    )
    asyncio.run(ensure_topics(kafka, partitions=4))
    port = free_port()
    env = worker_env(
        bootstrap,
        port,
        MODSTREAM_INPUT_TOPIC=kafka.input_topic,
        MODSTREAM_SCORES_TOPIC=kafka.scores_topic,
        MODSTREAM_FLAGGED_TOPIC=kafka.flagged_topic,
        MODSTREAM_DLQ_TOPIC=kafka.dlq_topic,
        MODSTREAM_GROUP_ID=f"bench-{suffix}",
        MODSTREAM_CACHE_SIZE="0",
        MODSTREAM_CLASSIFIER=classifier,
        MODSTREAM_SESSION_TIMEOUT_MS="6000",
    )
    log = Path(tempfile.mkdtemp(prefix="modstream-bench-")) / "worker.log"
    proc = start_worker(env, log)
    try:
        wait_ready(port, proc)
        texts = demo_texts()
        values = [_message(i, texts[i % len(texts)]) for i in range(n)]
        capacity, _ = asyncio.run(_run_load(bootstrap, kafka, values, 0.0))
        out: dict[str, Any] = {"msgs_per_s": round(capacity, 1)}
        if latency_points:
            lat: dict[str, Any] = {}
            for frac in latency_points:
                rate = capacity * frac
                count = max(200, int(rate * 8))
                vals = [_message(i, texts[i % len(texts)]) for i in range(count)]
                _, ms = asyncio.run(_run_load(bootstrap, kafka, vals, rate))
                lat[f"{int(frac * 100)}pct"] = {
                    "rate_msgs_per_s": round(rate, 1),
                    "p50": round(float(np.percentile(ms, 50)), 1),
                    "p99": round(float(np.percentile(ms, 99)), 1),
                }
            out["latency_ms"] = lat
        out["peak_rss_mb"] = round(memory_mib(proc.pid, "VmHWM"), 1)
        return out
    finally:
        stop_worker(proc)


def run_bench(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    settings = load_settings()
    batch = settings.batching.max_batch_size
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "max_batch_size": batch,
        "max_batch_wait_ms": settings.batching.max_batch_wait_ms,
    }
    console.print("[bold]model only[/] (shipped CPU model, demo texts, cache off)")
    result.update(model_only(settings.model.model_dir, batch, args.quick))
    n_null = 30_000 if args.quick else 100_000
    with EmbeddedBroker() as broker:
        console.print("[bold]null pipeline[/] (worker process, classifier does no work)")
        null = through_broker(broker.bootstrap_servers, "null", n_null, None)
        result["null_pipeline_msgs_per_s"] = null["msgs_per_s"]
        console.print("[bold]end to end[/] (worker process with the model, cache off)")
        n_e2e = max(2_000, int(result["model_only_msgs_per_s"] * (10 if args.quick else 30)))
        e2e = through_broker(broker.bootstrap_servers, "onnx", n_e2e, [0.25, 0.5, 0.9])
    result["end_to_end_msgs_per_s"] = e2e["msgs_per_s"]
    result["latency_ms"] = e2e["latency_ms"]
    result["peak_rss_mb"] = e2e["peak_rss_mb"]
    result["ratios"] = {
        "end_to_end_over_model_only": round(
            result["end_to_end_msgs_per_s"] / result["model_only_msgs_per_s"], 3
        ),
        "sorted_over_unsorted": round(
            result["model_only_msgs_per_s"] / result["unsorted_msgs_per_s"], 3
        ),
        "batched_over_batch_1": round(
            result["model_only_msgs_per_s"] / result["batch_size_1_msgs_per_s"], 3
        ),
        "p99_budget_ms_at_50pct": round(
            result["max_batch_wait_ms"] + 3 * result["full_batch_inference_ms_p99"], 1
        ),
    }
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.json:
        print(text)
        return 0
    table = Table(title="modstream bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "model_only_msgs_per_s",
        "unsorted_msgs_per_s",
        "batch_size_1_msgs_per_s",
        "null_pipeline_msgs_per_s",
        "end_to_end_msgs_per_s",
        "peak_rss_mb",
        "full_batch_inference_ms_p99",
    ):
        table.add_row(key, str(result[key]))
    for point, lat in result["latency_ms"].items():
        table.add_row(f"latency p50/p99 ms at {point}", f"{lat['p50']} / {lat['p99']}")
    Console().print(table)
    return 0
