"""Soak test: one worker under steady load for minutes, sampled every few seconds.

Starts the embedded broker and a real worker process, measures the worker's
capacity in a short warm-up (as fast as it can drain a burst), then produces
at a fixed rate (default: half that capacity) for ``--minutes`` and samples,
every ``--interval-s`` seconds:

* the worker's resident memory (from /proc, no psutil needed),
* consumer lag: log-end offsets minus the group's committed offsets,
* end-to-end latency: from the producer's send to the score being readable
  on the scores topic (p50/p99 over the interval).

At the end it sorts every message that was neither scored nor dead-lettered
by the offset the broker acknowledged for it: at or above the group's final
commit it is input still waiting, below it it is lost (the worker committed
past it without a score), and the input topic is read back at each lost
offset. It prints a table and writes ``<out>.json`` (every sample) and
``<out>.md`` (a section for ``docs/reliability.md``). Exit status 1 if a
message was lost.

    python scripts/soak.py                     # 10 minutes at half capacity
    python scripts/soak.py --minutes 1         # a quick check
    python scripts/soak.py --rate 300 --minutes 30 --out runs/soak-300

Texts are the bundled demo chat with a unique suffix each, so the worker's
exact-text cache cannot flatter the numbers (``--repeat-texts`` allows it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stream.bench import memory_mib  # noqa: E402
from stream.broker import EmbeddedBroker, free_port  # noqa: E402
from stream.demo import read_records, wait_ready  # noqa: E402

TOPICS = {
    "input": "soak.messages",
    "scores": "soak.scores",
    "flagged": "soak.flagged",
    "dlq": "soak.dlq",
}
GROUP = "soak"
#: How long the score reader may take to catch up with the scores topic at the end.
CATCH_UP_S = 600.0


# -- the worker ----------------------------------------------------------------------------


def start_worker(
    bootstrap: str, model_dir: Path | None, log_path: Path, cache_size: int | None = None
) -> tuple[Any, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODSTREAM_")}
    env.update(
        PYTHONPATH=str(REPO),
        MODSTREAM_BOOTSTRAP_SERVERS=bootstrap,
        MODSTREAM_HTTP_HOST="127.0.0.1",
        MODSTREAM_HTTP_PORT=str(port),
        MODSTREAM_LOG_LEVEL="WARNING",
        MODSTREAM_SESSION_TIMEOUT_MS="6000",
        MODSTREAM_INPUT_TOPIC=TOPICS["input"],
        MODSTREAM_SCORES_TOPIC=TOPICS["scores"],
        MODSTREAM_FLAGGED_TOPIC=TOPICS["flagged"],
        MODSTREAM_DLQ_TOPIC=TOPICS["dlq"],
        MODSTREAM_GROUP_ID=GROUP,
    )
    if model_dir is not None:
        env["MODSTREAM_MODEL_DIR"] = str(model_dir)
    if cache_size is not None:
        env["MODSTREAM_CACHE_SIZE"] = str(cache_size)
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the worker
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(port, proc, timeout_s=180)
    except RuntimeError as exc:  # it exited
        raise SystemExit(f"{exc}; see {log_path}") from exc
    except TimeoutError as exc:
        proc.kill()
        raise SystemExit(f"{exc}; see {log_path}") from exc
    return proc, port


# -- traffic -------------------------------------------------------------------------------


class Traffic:
    """Chat messages from the demo data; ``unique`` appends a counter to every text."""

    def __init__(self, unique: bool) -> None:
        self.bodies = []
        for raw in read_records():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(body, dict) and isinstance(body.get("text"), str):
                self.bodies.append(body)
        self.unique = unique
        self.n = 0

    def next(self) -> tuple[str, bytes, bytes]:
        body = dict(self.bodies[self.n % len(self.bodies)])
        mid = f"soak-{self.n:08d}"
        body["message_id"] = mid
        if self.unique:
            body["text"] = f"{body['text']} #{self.n}"
        self.n += 1
        key = str(body.get("conversation_id") or mid).encode()
        return mid, key, orjson.dumps(body)


@dataclass
class Sample:
    t_s: float
    rss_mib: float
    lag: int
    sent: int
    scored: int
    rate_in: float
    rate_out: float
    e2e_p50_ms: float | None
    e2e_p99_ms: float | None


@dataclass
class State:
    sent_at: dict[str, float] = field(default_factory=dict)
    scored: set[str] = field(default_factory=set)
    duplicates: int = 0
    window: list[float] = field(default_factory=list)  # e2e latencies (ms) since last sample
    all_latencies: list[float] = field(default_factory=list)
    dead_letters: dict[str, str] = field(default_factory=dict)  # message_id -> reason
    placed: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (partition, offset)


async def produce(
    producer: AIOKafkaProducer, traffic: Traffic, state: State, rate: float, seconds: float
) -> None:
    """Send at ``rate`` messages/s for ``seconds`` (``rate`` 0: one burst of ``seconds`` msgs)."""
    started = time.monotonic()
    pending: dict[str, Any] = {}  # message id -> its send's future
    if rate <= 0:
        for _ in range(int(seconds)):
            mid, key, value = traffic.next()
            state.sent_at[mid] = time.time()
            pending[mid] = await producer.send(TOPICS["input"], value=value, key=key)
        await acknowledged(pending, state)
        return
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) - sent
        for _ in range(due):
            mid, key, value = traffic.next()
            state.sent_at[mid] = time.time()
            pending[mid] = await producer.send(TOPICS["input"], value=value, key=key)
        sent += max(due, 0)
        if len(pending) > 1000:
            await acknowledged(pending, state)
        await asyncio.sleep(0.005)
    await acknowledged(pending, state)


async def acknowledged(pending: dict[str, Any], state: State) -> None:
    """Wait for the sends in ``pending`` and record where the broker put each message."""
    metadata = await asyncio.gather(*pending.values(), return_exceptions=True)
    for mid, md in zip(pending, metadata, strict=True):
        if not isinstance(md, BaseException):  # a failed send stays unplaced: unacknowledged
            state.placed[mid] = (md.partition, md.offset)
    pending.clear()


async def read_scores(bootstrap: str, state: State, stop: asyncio.Event) -> None:
    """Record every score and dead letter until ``stop``, then catch up with both topics' ends."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        # assigned, not subscribed, so the partitions are known before the first fetch
        await consumer.topics()
        assigned = []
        for topic in (TOPICS["scores"], TOPICS["dlq"]):
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise RuntimeError(f"topic {topic} does not exist")
            assigned += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        while not stop.is_set():
            await read_batch(consumer, state)
        # Catch up before anything is counted. ``stop`` is set after the final
        # lag was read, and an input offset is committed only after its score
        # was acknowledged, so every committed input's score is below these end
        # offsets; a reader left behind by a slow broker would otherwise count
        # those messages as lost.
        ends = await consumer.end_offsets(list(consumer.assignment()))
        deadline = time.monotonic() + CATCH_UP_S
        while time.monotonic() < deadline and await behind(consumer, ends):
            await read_batch(consumer, state, timed=False)  # late by this reader, not the worker
    finally:
        await consumer.stop()


async def read_batch(consumer: AIOKafkaConsumer, state: State, timed: bool = True) -> None:
    """One fetch into ``state``: scored ids, duplicates, latencies if ``timed``, dead letters."""
    batches = await consumer.getmany(timeout_ms=100)
    now = time.time()
    for tp, records in batches.items():
        for r in records:
            if tp.topic == TOPICS["dlq"]:
                letter = orjson.loads(r.value)
                try:
                    mid = str(orjson.loads(base64.b64decode(letter["raw_b64"]))["message_id"])
                except (ValueError, KeyError, TypeError):
                    mid = f"offset-{letter['source']['partition']}-{letter['source']['offset']}"
                state.dead_letters[mid] = letter["reason"]
                continue
            mid = orjson.loads(r.value)["message_id"]
            if mid in state.scored:
                state.duplicates += 1
                continue
            state.scored.add(mid)
            sent = state.sent_at.get(mid)
            if timed and sent is not None:
                ms = (now - sent) * 1000.0
                state.window.append(ms)
                state.all_latencies.append(ms)


async def behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether the reader has not yet reached ``ends`` on some partition."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def committed_offsets(probe: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[int, int]:
    """The group's committed offset per input partition (0 where it has none)."""
    committed = {}
    for tp in tps:
        offset = await probe.committed(tp)
        committed[tp.partition] = offset if offset is not None and offset >= 0 else 0
    return committed


async def end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[int, int]:
    """The log-end offset the broker reports per input partition."""
    return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}


def lag(committed: dict[int, int], ends: dict[int, int]) -> int:
    return sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())


async def group_lag(probe: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
    """Records not yet committed by the group (committed read first, so never negative)."""
    committed = await committed_offsets(probe, tps)
    return lag(committed, await end_offsets(probe, tps))


def partition_report(
    state: State, committed: dict[int, int], ends: dict[int, int], ends_later: dict[int, int]
) -> dict[str, dict[str, int]]:
    """Per input partition: the group's commit, the end the broker reported at the final lag
    and again after the score reader caught up, and the end its produce acks imply
    (highest acknowledged offset + 1). An end below the acks' undercounts the lag."""
    acked: dict[int, int] = {}
    for partition, offset in state.placed.values():
        acked[partition] = max(acked.get(partition, 0), offset + 1)
    return {  # str keys: the report is written as JSON
        str(p): {
            "committed": committed.get(p, 0),
            "end_reported": ends[p],
            "end_reported_later": ends_later[p],
            "end_acknowledged": acked.get(p, 0),
        }
        for p in sorted(ends)
    }


def classify_unscored(state: State, committed: dict[int, int]) -> dict[str, list[str]]:
    """Every message neither scored nor dead-lettered, by where its input offset sits.

    ``lost``: below the group's committed offset, so the worker committed past it
    without its score reaching the scores topic. ``uncommitted``: at or above it,
    input still waiting its turn. ``unacknowledged``: the broker never confirmed
    the send (no offset), so it is not the worker's to have scored.
    """
    out: dict[str, list[str]] = {"lost": [], "uncommitted": [], "unacknowledged": []}
    for mid in sorted(set(state.sent_at) - state.scored - set(state.dead_letters)):
        place = state.placed.get(mid)
        if place is None:
            out["unacknowledged"].append(mid)
        elif place[1] < committed.get(place[0], 0):
            out["lost"].append(mid)
        else:
            out["uncommitted"].append(mid)
    return out


async def read_back(
    bootstrap: str, places: dict[str, tuple[int, int]], timeout_s: float = 60.0
) -> dict[str, str | None]:
    """The message id the input topic holds at each of ``places`` (None: no record there).

    Tells a broker that acknowledged a record but did not keep it (None, or
    another id) from a worker that read it and committed past it unscored.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    found: dict[str, str | None] = dict.fromkeys(places)
    try:
        by_offset = {place: mid for mid, place in places.items()}
        tps = sorted({TopicPartition(TOPICS["input"], p) for p, _ in places.values()})
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, min(o for p, o in places.values() if p == tp.partition))
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        wanted = set(by_offset)
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for r in records:
                    place = (tp.partition, r.offset)
                    if place in wanted:
                        wanted.discard(place)
                        found[by_offset[place]] = str(orjson.loads(r.value).get("message_id"))
            for tp in tps:  # a partition is done once past its last wanted offset or at its end
                last = max((o for p, o in wanted if p == tp.partition), default=-1)
                position = await consumer.position(tp)
                if position > last or position >= ends[tp]:
                    consumer.pause(tp)
            if consumer.paused() >= set(tps):
                break
    finally:
        await consumer.stop()
    return found


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


async def wait_scored(state: State, expect: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while len(state.scored) < expect and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return len(state.scored) >= expect


async def soak(args: argparse.Namespace, bootstrap: str, pid: int) -> dict[str, Any]:
    state = State()
    traffic = Traffic(unique=not args.repeat_texts)
    stop = asyncio.Event()
    reader = asyncio.create_task(read_scores(bootstrap, state, stop))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await probe.start()
    tps = [TopicPartition(TOPICS["input"], p) for p in range(args.partitions)]
    try:
        # Warm-up: a burst, drained as fast as the worker can; capacity = burst / drain time.
        burst = args.warmup_messages
        t0 = time.monotonic()
        await produce(producer, traffic, state, 0, burst)
        if not await wait_scored(state, burst, 600):
            raise SystemExit(f"warm-up: only {len(state.scored)}/{burst} scored in 600 s")
        capacity = burst / (time.monotonic() - t0)
        rate = args.rate or capacity / 2.0
        state.window.clear()
        state.all_latencies.clear()  # the burst's queueing is not the soak's latency
        print(
            f"warm-up: {burst} messages, capacity {capacity:.0f} msg/s; soak at {rate:.0f} msg/s "
            f"for {args.minutes:g} min, sampling every {args.interval_s:g} s",
            flush=True,
        )
        header = f"{'t (s)':>7} {'RSS MiB':>8} {'lag':>7} {'in/s':>7} {'out/s':>7} {'e2e p50':>8} {'e2e p99':>8}"
        print(header, flush=True)

        samples: list[Sample] = []
        started = time.monotonic()
        sending = asyncio.create_task(produce(producer, traffic, state, rate, args.minutes * 60))
        base_sent, base_scored = len(state.sent_at), len(state.scored)
        last_sent, last_scored, last_t = base_sent, base_scored, started
        while not sending.done():
            await asyncio.wait({sending}, timeout=args.interval_s)
            now = time.monotonic()
            dt = max(now - last_t, 1e-6)
            window, state.window = state.window, []
            sample = Sample(
                t_s=round(now - started, 1),
                rss_mib=round(memory_mib(pid), 1),
                lag=await group_lag(probe, tps),
                sent=len(state.sent_at) - base_sent,
                scored=len(state.scored) - base_scored,
                rate_in=round((len(state.sent_at) - last_sent) / dt, 1),
                rate_out=round((len(state.scored) - last_scored) / dt, 1),
                e2e_p50_ms=pct(window, 50),
                e2e_p99_ms=pct(window, 99),
            )
            samples.append(sample)
            last_sent, last_scored, last_t = len(state.sent_at), len(state.scored), now
            print(
                f"{sample.t_s:>7} {sample.rss_mib:>8} {sample.lag:>7} {sample.rate_in:>7} "
                f"{sample.rate_out:>7} {sample.e2e_p50_ms!s:>8} {sample.e2e_p99_ms!s:>8}",
                flush=True,
            )
        await sending
        complete = await wait_scored(state, len(state.sent_at), 120)
        # Committed offsets first: every score below them was acknowledged before
        # this read, so the reader's catch-up to later end offsets will see it.
        committed = await committed_offsets(probe, tps)
        ends = await end_offsets(probe, tps)
        final_lag = lag(committed, ends)
    finally:
        stop.set()
        await reader
        await probe.stop()
        await producer.stop()

    unscored = classify_unscored(state, committed)
    lost = {mid: state.placed[mid] for mid in unscored["lost"]}
    held = await read_back(bootstrap, lost) if lost else {}
    later = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await later.start()
    try:
        partitions = partition_report(state, committed, ends, await end_offsets(later, tps))
    finally:
        await later.stop()
    return summarise(
        args, capacity, rate, samples, state, complete, final_lag, unscored, held, partitions
    )


def slope_per_min(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    return round(float(np.polyfit(np.array(xs) / 60.0, np.array(ys), 1)[0]), 2)


def summarise(
    args: argparse.Namespace,
    capacity: float,
    rate: float,
    samples: list[Sample],
    state: State,
    complete: bool,
    final_lag: int,
    unscored: dict[str, list[str]],
    held: dict[str, str | None],
    partitions: dict[str, dict[str, int]],
) -> dict[str, Any]:
    # Judge flatness on the part after the first third (allocators and caches settle first).
    steady = samples[len(samples) // 3 :] or samples
    latencies = state.all_latencies
    lost = len(unscored["lost"])
    rss = [s.rss_mib for s in samples]
    lag = [s.lag for s in samples]
    result = {
        "command": " ".join(["python scripts/soak.py", *sys.argv[1:]]),
        "host": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "minutes": args.minutes,
        "capacity_msgs_per_s": round(capacity, 1),
        "rate_msgs_per_s": round(rate, 1),
        "messages": len(state.sent_at),
        "scored": len(state.scored),
        "unscored": sum(len(ids) for ids in unscored.values()),
        "uncommitted": len(unscored["uncommitted"]),
        "unacknowledged": len(unscored["unacknowledged"]),
        "dead_letters": dict(Counter(state.dead_letters.values())),
        "lost": lost,
        # where each lost id was sent, and which id the input topic holds there now
        "lost_ids": [
            {"id": mid, "partition": p, "offset": o, "input_topic_holds": held.get(mid)}
            for mid, (p, o) in sorted(
                ((mid, state.placed[mid]) for mid in unscored["lost"]), key=lambda kv: kv[1]
            )
        ],
        "duplicates": state.duplicates,
        "complete": complete,
        "final_lag": final_lag,
        "partitions": partitions,
        "rss_mib": {
            "first": rss[0] if rss else None,
            "last": rss[-1] if rss else None,
            "max": max(rss) if rss else None,
            "steady_slope_mib_per_min": slope_per_min(
                [s.t_s for s in steady], [s.rss_mib for s in steady]
            ),
        },
        "lag": {
            "max": max(lag) if lag else None,
            "steady_max": max((s.lag for s in steady), default=None),
            "steady_slope_per_min": slope_per_min(
                [s.t_s for s in steady], [float(s.lag) for s in steady]
            ),
        },
        "e2e_ms": {
            "p50": pct(latencies, 50),
            "p99": pct(latencies, 99),
            "max": round(max(latencies), 1) if latencies else None,
        },
        "samples": [asdict(s) for s in samples],
    }
    rss_slope = result["rss_mib"]["steady_slope_mib_per_min"]
    lag_slope = result["lag"]["steady_slope_per_min"]
    result["verdict"] = {
        "nothing_lost": lost == 0,
        "drained": complete,
        "rss_flat": rss_slope is not None and rss_slope < 2.0,
        "lag_flat": lag_slope is not None and lag_slope < max(rate * 0.5, 10.0),
    }
    return result


def markdown(result: dict[str, Any]) -> str:
    r = result
    lines = [
        f"### Soak: {r['minutes']:g} min at {r['rate_msgs_per_s']:.0f} msg/s "
        f"(half of the {r['capacity_msgs_per_s']:.0f} msg/s measured in the warm-up)",
        "",
        f"Command: `{r['command']}` on {r['host']['platform']}, {r['host']['cpus']} CPUs.",
        "",
        "| | value |",
        "|---|---|",
        f"| messages / scored / not scored: uncommitted input, send not acknowledged, lost (offset committed) / duplicates | {r['messages']} / {r['scored']} / {r['uncommitted']}, {r['unacknowledged']}, {r['lost']} / {r['duplicates']} |",
        f"| lost ids (partition:offset, id the input topic holds there) | {lost_ids(r['lost_ids'])} |",
        f"| dead letters by reason | {r['dead_letters'] or 'none'} |",
        f"| RSS first / last / max (MiB) | {r['rss_mib']['first']} / {r['rss_mib']['last']} / {r['rss_mib']['max']} |",
        f"| RSS slope after the first third (MiB/min) | {r['rss_mib']['steady_slope_mib_per_min']} |",
        f"| consumer lag max / after the first third max / final | {r['lag']['max']} / {r['lag']['steady_max']} / {r['final_lag']} |",
        "| input partitions: committed, end reported at the final lag, end reported later, end by the produce acks | "
        + "; ".join(
            f"{p}: {v['committed']}, {v['end_reported']}, {v['end_reported_later']}, {v['end_acknowledged']}"
            for p, v in r["partitions"].items()
        )
        + " |",
        f"| end-to-end latency p50 / p99 / max (ms) | {r['e2e_ms']['p50']} / {r['e2e_ms']['p99']} / {r['e2e_ms']['max']} |",
        f"| verdict | {', '.join(f'{k}: {v}' for k, v in r['verdict'].items())} |",
        "",
        "| t (s) | RSS MiB | lag | in/s | out/s | e2e p50 ms | e2e p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in r["samples"]:
        lines.append(
            f"| {s['t_s']} | {s['rss_mib']} | {s['lag']} | {s['rate_in']} | {s['rate_out']} "
            f"| {s['e2e_p50_ms']} | {s['e2e_p99_ms']} |"
        )
    return "\n".join(lines) + "\n"


def lost_ids(rows: list[dict[str, Any]], limit: int = 20) -> str:
    """The first ``limit`` lost ids as ``id@partition:offset (holds id)``, for the report."""
    if not rows:
        return "none"
    shown = ", ".join(
        f"{r['id']}@{r['partition']}:{r['offset']} (holds {r['input_topic_holds']})"
        for r in rows[:limit]
    )
    return shown + (f", ... {len(rows) - limit} more" if len(rows) > limit else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument(
        "--rate", type=float, default=0.0, help="msg/s (default: half the warm-up capacity)"
    )
    p.add_argument("--interval-s", type=float, default=5.0)
    p.add_argument("--warmup-messages", type=int, default=3000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="default: MODSTREAM_MODEL_DIR or the bundled model",
    )
    p.add_argument("--repeat-texts", action="store_true", help="let the exact-text cache help")
    p.add_argument(
        "--cache-size",
        type=int,
        default=None,
        help="MODSTREAM_CACHE_SIZE for the worker (0: off, to watch RSS without the cache filling)",
    )
    p.add_argument(
        "--out", type=Path, default=REPO / "runs" / "soak", help="writes OUT.json and OUT.md"
    )
    args = p.parse_args(argv)
    model_dir = args.model_dir or (
        Path(os.environ["MODSTREAM_MODEL_DIR"]) if os.environ.get("MODSTREAM_MODEL_DIR") else None
    )

    log_path = Path(tempfile.mkdtemp(prefix="modstream-soak-")) / "worker.log"
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers

        async def topics() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                await admin.create_topics(
                    [NewTopic(t, args.partitions, 1) for t in TOPICS.values()]
                )
            finally:
                await admin.close()

        asyncio.run(topics())
        proc, _ = start_worker(bootstrap, model_dir, log_path, args.cache_size)
        print(f"broker {bootstrap}; worker pid {proc.pid}, log {log_path}", flush=True)
        try:
            result = asyncio.run(soak(args, bootstrap, proc.pid))
        finally:
            proc.terminate()
            try:
                result_code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                result_code = proc.wait()
    result["worker_exit_code"] = result_code
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    md_path.write_text(markdown(result))
    print(
        f"\n{result['messages']} sent, {result['scored']} scored, {result['uncommitted']} not yet "
        f"scored (uncommitted input), {result['unacknowledged']} sends not acknowledged, {sum(result['dead_letters'].values())} dead letters {result['dead_letters']}, "
        f"{result['lost']} lost, "
        f"{result['duplicates']} duplicates; RSS {result['rss_mib']['first']} -> "
        f"{result['rss_mib']['last']} MiB (slope {result['rss_mib']['steady_slope_mib_per_min']} "
        f"MiB/min); lag max {result['lag']['max']}, final {result['final_lag']}; e2e p50/p99 "
        f"{result['e2e_ms']['p50']}/{result['e2e_ms']['p99']} ms; worker exit {result_code}\n"
        f"verdict: {result['verdict']}\nwrote {json_path} and {md_path}"
    )
    return 0 if result["verdict"]["nothing_lost"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
