"""``modstream demo``: the whole path on one machine, with nothing to set up.

Starts the embedded broker and a real worker process, replays the bundled
chat traffic (``stream/demo_data/chat.jsonl``, malformed records included)
into ``chat.messages``, reads the three output topics back until every
record is accounted for, and prints a summary: messages, throughput,
latency percentiles, flags per category, dead letters, example flags.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stream.broker import EmbeddedBroker, free_port
from stream.kafka import ensure_topics
from stream.settings import KafkaSettings

DEMO_FILE = Path(__file__).parent / "demo_data" / "chat.jsonl"
#: The labels the demo's authors intended for each well-formed record.
DEMO_LABELS = DEMO_FILE.with_name("chat.labels.jsonl")


def agreement(got: Collected, labels_path: Path = DEMO_LABELS) -> dict[str, Any] | None:
    """How the worker's ``flagged`` agrees with the intended labels (any category)."""
    if not labels_path.is_file():
        return None
    tp = fp = fn = 0
    for line in labels_path.read_bytes().splitlines():
        item = orjson.loads(line)
        score = got.scores.get(item["message_id"])
        if score is None:
            continue
        wanted, flagged = any(item["categories"].values()), bool(score["flagged"])
        tp += wanted and flagged
        fp += flagged and not wanted
        fn += wanted and not flagged
    return {
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        "false_positives": fp,
        "missed": fn,
    }


def read_records(path: Path = DEMO_FILE) -> list[bytes]:
    """Raw record values, one per line: malformed ones are kept byte for byte."""
    return [line for line in path.read_bytes().split(b"\n") if line]


def record_key(value: bytes) -> bytes | None:
    try:
        conv = orjson.loads(value).get("conversation_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return conv.encode() if isinstance(conv, str) else None


def worker_env(bootstrap: str, http_port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MODSTREAM_BOOTSTRAP_SERVERS=bootstrap,
        MODSTREAM_HTTP_PORT=str(http_port),
        MODSTREAM_HTTP_HOST="127.0.0.1",
        MODSTREAM_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def start_worker(env: dict[str, str], log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """A real worker process, as an operator would start it."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker"], env=env, stdout=out, stderr=out
    )


def wait_ready(http_port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Block until the worker's /readyz says 200 (model loaded, group joined)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"worker not ready after {timeout_s}s")


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


@dataclass
class Collected:
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    received_at: dict[str, float] = field(default_factory=dict)


async def produce_all(
    bootstrap: str, topic: str, values: list[bytes], rate: float = 0.0
) -> dict[int, float]:
    """Produce ``values`` in order; returns index -> wall time sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    sent_at: dict[int, float] = {}
    started = time.monotonic()
    try:
        futures = []
        for i, value in enumerate(values):
            if rate > 0:
                wait = started + i / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            sent_at[i] = time.time()
            futures.append(await producer.send(topic, value=value, key=record_key(value)))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent_at


async def collect(
    bootstrap: str,
    kafka: KafkaSettings,
    expect: int,
    timeout_s: float,
    progress: Any = None,
    task: Any = None,
) -> Collected:
    """Read scores, flags and dead letters until ``expect`` inputs are accounted for."""
    consumer = AIOKafkaConsumer(
        kafka.scores_topic,
        kafka.flagged_topic,
        kafka.dlq_topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    got = Collected()
    deadline = time.monotonic() + timeout_s
    try:
        # Flag events travel on their own topic and may arrive just after the
        # last score: wait for as many as the scores say were flagged.
        while time.monotonic() < deadline and (
            len(got.scores) + len(got.dead) < expect
            or len({f["message_id"] for f in got.flagged})
            < sum(1 for s in got.scores.values() if s["flagged"])
        ):
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for tp, records in batches.items():
                for r in records:
                    value = orjson.loads(r.value)
                    if tp.topic == kafka.scores_topic:
                        got.scores.setdefault(value["message_id"], value)
                        got.received_at.setdefault(value["message_id"], now)
                    elif tp.topic == kafka.flagged_topic:
                        got.flagged.append(value)
                    else:
                        got.dead.append(value)
            if progress is not None:
                progress.update(task, completed=len(got.scores) + len(got.dead))
    finally:
        await consumer.stop()
    return got


def summarise(values: list[bytes], got: Collected, elapsed_s: float) -> dict[str, Any]:
    latencies = np.array(
        [s["latency_ms"] for s in got.scores.values() if s.get("latency_ms") is not None]
    )
    per_category: Counter[str] = Counter()
    for score in got.scores.values():
        per_category.update(c for c, hit in score["categories"].items() if hit)
    examples = []
    seen: set[str] = set()
    for flag in got.flagged:
        top = flag["triggered"][0]
        if top not in seen:
            seen.add(top)
            text = (flag.get("text") or "")[:90]
            examples.append({"category": top, "action": flag["action"], "text": text})
    return {
        "messages": len(values),
        "scored": len(got.scores),
        "flagged": sum(1 for s in got.scores.values() if s["flagged"]),
        "dead_letters": len(got.dead),
        "dead_letter_reasons": dict(Counter(d["reason"] for d in got.dead)),
        "elapsed_s": round(elapsed_s, 2),
        "throughput_msgs_per_s": round(len(values) / elapsed_s, 1) if elapsed_s else 0.0,
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
            "p99": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
        },
        "flags_per_category": dict(per_category.most_common()),
        "examples": examples[:8],
    }


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="modstream demo", show_header=False)
    for key in (
        "messages",
        "scored",
        "flagged",
        "dead_letters",
        "elapsed_s",
        "throughput_msgs_per_s",
    ):
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row(
        "latency p50 / p99 (ms)", f"{summary['latency_ms']['p50']} / {summary['latency_ms']['p99']}"
    )
    agree = summary.get("agreement_with_intended_labels")
    if agree:
        table.add_row(
            "flagged vs intended labels",
            f"precision {agree['precision']}, recall {agree['recall']} "
            f"({agree['false_positives']} false flags, {agree['missed']} missed)",
        )
    table.add_row(
        "dead letter reasons",
        ", ".join(f"{k}: {v}" for k, v in summary["dead_letter_reasons"].items()),
    )
    console.print(table)
    flags = Table(title="flags per category")
    flags.add_column("category")
    flags.add_column("flags", justify="right")
    for cat, n in summary["flags_per_category"].items():
        flags.add_row(cat, str(n))
    console.print(flags)
    examples = Table(title="example flags (text shown because reviewers need it)")
    examples.add_column("category")
    examples.add_column("action")
    examples.add_column("text")
    for ex in summary["examples"]:
        examples.add_row(ex["category"], ex["action"], ex["text"])
    console.print(examples)


def run_demo(args: argparse.Namespace) -> int:
    console = Console(stderr=args.json)
    values = read_records(args.file or DEMO_FILE)
    if args.messages:
        values = values[: args.messages]
    kafka = KafkaSettings()
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        console.print(f"[bold]broker[/] Tansu on {bootstrap}")
        asyncio.run(
            ensure_topics(kafka.model_copy(update={"bootstrap_servers": bootstrap}), partitions=4)
        )
        http_port = free_port()
        log_path = Path(tempfile.mkdtemp(prefix="modstream-demo-")) / "worker.log"
        worker = start_worker(worker_env(bootstrap, http_port), log_path)
        console.print(f"[bold]worker[/] pid {worker.pid}, HTTP on 127.0.0.1:{http_port}")
        try:
            try:
                wait_ready(http_port, worker)
            except (RuntimeError, TimeoutError) as exc:
                console.print(f"[red]{exc}[/]; worker log {log_path}:")
                console.print(log_path.read_text()[-2000:], markup=False)
                return 1
            with Progress(
                TextColumn("[bold]replaying[/] {task.completed}/{task.total} accounted for"),
                BarColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("demo", total=len(values))

                async def go() -> tuple[Collected, float]:
                    started = time.monotonic()
                    collector = asyncio.create_task(
                        collect(bootstrap, kafka, len(values), 300, progress, task)
                    )
                    await produce_all(bootstrap, kafka.input_topic, values, args.rate)
                    got = await collector
                    return got, time.monotonic() - started

                got, elapsed = asyncio.run(go())
        finally:
            code = stop_worker(worker)
    summary = summarise(values, got, elapsed)
    if args.file is None:
        summary["agreement_with_intended_labels"] = agreement(got)
    summary["worker_exit_code"] = code
    if args.json:
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_summary(console, summary)
    accounted = summary["scored"] + summary["dead_letters"]
    if accounted < len(values):
        console.print(f"[red]only {accounted} of {len(values)} records were accounted for[/]")
        return 1
    return 0
