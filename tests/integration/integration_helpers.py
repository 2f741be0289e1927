"""Helpers for the integration suite: worker processes, traffic, and reading the topics back.

The tests drive modstream the way an operator and a downstream consumer
would: a worker is a ``python -m stream.cli worker`` process configured only
through ``MODSTREAM_*`` variables, input goes in with an ordinary Kafka
producer, and results are judged by what is on the output topics and what
the group has committed. Nothing here reaches into a worker's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.broker import EmbeddedBroker, free_port
from stream.demo import read_records

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 4


# -- traffic -------------------------------------------------------------------------------


def demo_texts() -> list[str]:
    """Texts of the well-formed bundled demo records: realistic chat, some of it toxic."""
    texts = []
    for raw in read_records():
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
            text = orjson.loads(raw).get("text")
            if isinstance(text, str) and text.strip():
                texts.append(text)
    return texts


@dataclass(frozen=True, slots=True)
class Rec:
    """One input record to produce. ``message_id`` is None for records that must dead-letter."""

    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    message_id: str | None = None
    reason: str | None = None  # the expected dead-letter reason


def chat(message_id: str, text: str, conversation: str, **extra: Any) -> Rec:
    body = {
        "message_id": message_id,
        "text": text,
        "user_id": f"u-{zlib.crc32(conversation.encode()) % 97}",
        "conversation_id": conversation,
        "tenant_id": "t-test",
        "sent_at": "2026-11-28T10:00:00Z",
        **extra,
    }
    return Rec(orjson.dumps(body), conversation.encode(), message_id=message_id)


def chat_stream(n: int, run: str, conversations: int = 37) -> list[Rec]:
    """``n`` well-formed messages, ids ``{run}-{i:06d}``, keyed by conversation."""
    texts = demo_texts()
    return [
        chat(f"{run}-{i:06d}", texts[i % len(texts)], f"c-{i % conversations}") for i in range(n)
    ]


def malformed(n: int, run: str, max_text_chars: int) -> list[Rec]:
    """``n`` records that must dead-letter, cycling through every reason the decoder knows."""
    makers = [
        (
            "invalid_json",
            lambda i: b'{"message_id": "' + f"{run}-bad-{i}".encode() + b'", "text": ',
        ),
        ("invalid_json", lambda i: b"not json at all " + str(i).encode()),
        (
            "invalid_utf8",
            lambda i: b'{"message_id": "x", "text": "caf\xe9 ' + str(i).encode() + b'"}',
        ),
        ("schema", lambda i: orjson.dumps({"message_id": f"{run}-bad-{i}"})),  # no text
        ("schema", lambda i: orjson.dumps({"message_id": i, "text": "wrong id type"})),
        ("schema", lambda i: orjson.dumps([f"{run}-bad-{i}", "an array"])),
        ("schema", lambda i: None),  # tombstone
        ("empty_text", lambda i: orjson.dumps({"message_id": f"{run}-bad-{i}", "text": "  \n"})),
        (
            "too_large",
            lambda i: orjson.dumps(
                {"message_id": f"{run}-bad-{i}", "text": "long " * (max_text_chars // 4)}
            ),
        ),
        (
            "invalid_utf8",
            lambda i: (
                b'{"message_id": "' + f"{run}-bad-{i}".encode() + b'", "text": "\\ud800 lone"}'
            ),
        ),
    ]
    out = []
    for i in range(n):
        reason, make = makers[i % len(makers)]
        out.append(Rec(make(i), f"bad-{i % 5}".encode(), reason=reason))
    return out


def interleave(good: list[Rec], bad: list[Rec]) -> list[Rec]:
    """Spread ``bad`` evenly through ``good``."""
    if not bad:
        return list(good)
    out: list[Rec] = []
    step = max(1, len(good) // len(bad))
    bad_iter = iter(bad)
    for i, rec in enumerate(good):
        if i % step == step // 2:
            nxt = next(bad_iter, None)
            if nxt is not None:
                out.append(nxt)
        out.append(rec)
    out.extend(bad_iter)
    return out


# -- kafka ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    """One test's private topics and consumer group."""

    input: str
    scores: str
    flagged: str
    dlq: str
    group: str

    @classmethod
    def unique(cls, label: str) -> Topics:
        suffix = f"{label[:40]}-{uuid.uuid4().hex[:8]}"
        return cls(
            f"in-{suffix}", f"scores-{suffix}", f"flagged-{suffix}", f"dlq-{suffix}", f"g-{suffix}"
        )

    @property
    def outputs(self) -> tuple[str, str, str]:
        return (self.scores, self.flagged, self.dlq)

    def env(self) -> dict[str, str]:
        return {
            "MODSTREAM_INPUT_TOPIC": self.input,
            "MODSTREAM_SCORES_TOPIC": self.scores,
            "MODSTREAM_FLAGGED_TOPIC": self.flagged,
            "MODSTREAM_DLQ_TOPIC": self.dlq,
            "MODSTREAM_GROUP_ID": self.group,
        }


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=n, num_partitions=partitions, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[Rec],
    rate: float = 0.0,
    max_request_size: int = 1_048_576,
) -> list[tuple[int, int]]:
    """Produce ``records`` in order (at ``rate`` per second when > 0); returns (partition, offset) each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        acks="all",
        max_request_size=max_request_size,
        client_id="it-producer",
    )
    await producer.start()
    try:
        futures = []
        started = time.monotonic()
        for i, rec in enumerate(records):
            if rate > 0:
                wait = started + i / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            futures.append(
                await producer.send(
                    topic, value=rec.value, key=rec.key, headers=list(rec.headers) or None
                )
            )
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


@dataclass
class Out:
    """One record read from an output topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]


@dataclass
class Outputs:
    scores: list[Out] = field(default_factory=list)
    flagged: list[Out] = field(default_factory=list)
    dead: list[Out] = field(default_factory=list)

    def score_ids(self) -> set[str]:
        return {o.value["message_id"] for o in self.scores}

    def score_counts(self) -> Counter[str]:
        return Counter(o.value["message_id"] for o in self.scores)

    def duplicates(self) -> dict[str, int]:
        return {mid: n for mid, n in self.score_counts().items() if n > 1}

    def dead_sources(self) -> set[tuple[int, int]]:
        return {(o.value["source"]["partition"], o.value["source"]["offset"]) for o in self.dead}


class OutputReader:
    """Reads a test's three output topics from the start, accumulating every record.

    ``group_id=None`` and manual assignment: the reader never joins or moves a group.
    """

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.topics = topics
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="it-reader",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self.out = Outputs()

    async def __aenter__(self) -> OutputReader:
        await self.consumer.start()
        tps: list[TopicPartition] = []
        for topic in self.topics.outputs:
            parts = await self._partitions(topic)
            tps.extend(TopicPartition(topic, p) for p in parts)
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def _partitions(self, topic: str) -> set[int]:
        for _ in range(50):
            parts = self.consumer.partitions_for_topic(topic)
            if parts:
                return parts
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise AssertionError(f"topic {topic} has no partitions")

    async def poll(self, timeout_ms: int = 200) -> int:
        got = await self.consumer.getmany(timeout_ms=timeout_ms)
        n = 0
        for tp, records in got.items():
            for r in records:
                out = Out(tp.topic, tp.partition, r.offset, r.key, orjson.loads(r.value))
                if tp.topic == self.topics.scores:
                    self.out.scores.append(out)
                elif tp.topic == self.topics.flagged:
                    self.out.flagged.append(out)
                else:
                    self.out.dead.append(out)
                n += 1
        return n

    async def until(
        self,
        ids: set[str],
        dead: set[tuple[int, int]] | int = 0,
        timeout_s: float = 120.0,
        alive: Any = None,
    ) -> Outputs:
        """Read until every id in ``ids`` has a score and ``dead`` is met, then to the end.

        ``dead`` is a set of (partition, offset) sources or a count of dead letters.
        ``alive`` (optional) is called each round and may raise to stop early.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            await self.poll()
            have_ids = ids <= self.out.score_ids()
            have_dead = (
                dead <= self.out.dead_sources()
                if isinstance(dead, set)
                else len(self.out.dead) >= dead
            )
            if have_ids and have_dead:
                break
            if alive is not None:
                alive()
            if time.monotonic() > deadline:
                missing = ids - self.out.score_ids()
                raise AssertionError(
                    f"after {timeout_s}s: {len(missing)} of {len(ids)} ids unscored "
                    f"(e.g. {sorted(missing)[:5]}), {len(self.out.dead)} dead letters"
                )
        await self.to_end()
        return self.out

    async def to_end(self) -> Outputs:
        """Read everything up to the current end offsets (so duplicates are counted too)."""
        ends = await self.consumer.end_offsets(list(self.consumer.assignment()))
        while await behind(self.consumer, ends):
            await self.poll(100)
        return self.out


async def behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """True while ``consumer`` has not reached ``ends`` on some partition."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = []
        while await behind(consumer, ends):
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (0 where nothing is committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        out = {}
        for p in sorted(parts):
            offset = await consumer.committed(TopicPartition(topic, p))
            out[p] = offset if offset is not None and offset >= 0 else 0
        return out
    finally:
        await consumer.stop()


def unaccounted_below(
    committed: dict[int, int], inputs: list[Any], outputs: Outputs
) -> list[tuple[int, int]]:
    """Input (partition, offset)s below the committed offset with no score and no dead letter."""
    scored = outputs.score_ids()
    dead = outputs.dead_sources()
    missing = []
    for r in inputs:
        if r.offset >= committed.get(r.partition, 0):
            continue
        if (r.partition, r.offset) in dead:
            continue
        mid = _message_id(r.value)
        if mid is None or mid not in scored:
            missing.append((r.partition, r.offset))
    return missing


def accounted_at_or_above(
    committed: dict[int, int], inputs: list[Any], outputs: Outputs
) -> list[tuple[int, int]]:
    """Input (partition, offset)s at or above the committed offset that have an output."""
    scored = outputs.score_ids()
    dead = outputs.dead_sources()
    out = []
    for r in inputs:
        if r.offset < committed.get(r.partition, 0):
            continue
        mid = _message_id(r.value)
        if (r.partition, r.offset) in dead or (mid is not None and mid in scored):
            out.append((r.partition, r.offset))
    return out


def _message_id(value: bytes | None) -> str | None:
    try:
        mid = orjson.loads(value or b"").get("message_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return mid if isinstance(mid, str) else None


# -- worker processes ----------------------------------------------------------------------


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Worker:
    """A ``modstream worker`` process with its own HTTP port and log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.http_port = int(env["MODSTREAM_HTTP_PORT"])
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            raise AssertionError(
                f"worker {self.pid} exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def http(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> HttpReply:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=body,
            method=method,
            headers=headers or {},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return HttpReply(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as err:
            return HttpReply(err.code, dict(err.headers), err.read())

    def get(self, path: str) -> HttpReply | None:
        """One GET of ``path``; None when nothing answers (the worker may have just exited)."""
        try:
            return self.http("GET", path, timeout=2.0)
        except (urllib.error.URLError, OSError):
            return None

    def status(self, path: str) -> int | None:
        """GET ``path``'s status; None when nothing answers."""
        reply = self.get(path)
        return None if reply is None else reply.status

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Block until /readyz says 200; returns seconds since start."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.assert_alive()
            if self.status("/readyz") == 200:
                return time.monotonic() - self.started_at
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout_s}s:\n{self.log_tail()}")

    async def ready(self, timeout_s: float = 120.0) -> float:
        return await asyncio.to_thread(self.wait_ready, timeout_s)

    def wait_log(self, needle: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return
            self.assert_alive()
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not logged in {timeout_s}s:\n{self.log_tail()}")

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def kill(self) -> int:
        """SIGKILL: no drain, no commit, no goodbye to the group."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        return self.wait(10)

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait; raises if it does not exit in time."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float) -> int:
        return self.proc.wait(timeout_s)

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self._log.close()


#: The ``workers`` fixture: ``workers(name=None, **MODSTREAM_env) -> Worker``.
WorkerFactory = Callable[..., Worker]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (no psutil needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def worker_env(bootstrap: str, topics: Topics, model_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment of a test worker: its own topics, group, HTTP port and quick group joins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODSTREAM_")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        MODSTREAM_BOOTSTRAP_SERVERS=bootstrap,
        MODSTREAM_HTTP_HOST="127.0.0.1",
        MODSTREAM_HTTP_PORT=str(free_port()),
        MODSTREAM_MODEL_DIR=str(model_dir),
        MODSTREAM_LOG_LEVEL="INFO",
        # Tansu delays a first join by about half the session timeout; a dead
        # (SIGKILLed) member's partitions move after one session timeout.
        MODSTREAM_SESSION_TIMEOUT_MS="6000",
        MODSTREAM_INTRA_OP_THREADS="1",
        MODSTREAM_CLIENT_ID=f"it-worker-{uuid.uuid4().hex[:6]}",
        **topics.env(),
    )
    env.update(overrides)
    return env


@contextlib.contextmanager
def module_worker(
    bootstrap: str, model_dir: Path, log_dir: Path, label: str, **env: str
) -> Iterator[tuple[Topics, Worker]]:
    """A ready worker on fresh topics, for a module's worth of tests that only observe it."""
    topics = Topics.unique(label)
    asyncio.run(create_topics(bootstrap, [topics.input, *topics.outputs]))
    worker = Worker(worker_env(bootstrap, topics, model_dir, **env), log_dir / f"{label}.log")
    try:
        worker.wait_ready()
        yield topics, worker
    finally:
        worker.close()


# -- a Kafka-aware proxy that can hold back one client's produce requests ------------------


class ProxiedBroker(EmbeddedBroker):
    """A Tansu broker that advertises a proxy's address, so every client goes through it."""

    def __init__(self, proxy_port: int) -> None:
        super().__init__()
        self.proxy_port = proxy_port

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.proxy_port}"

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--advertised-listener-url") + 1] = f"tcp://{self.host}:{self.proxy_port}"
        return cmd

    def start(self, timeout_s: float = 15.0) -> ProxiedBroker:
        super().start(timeout_s)
        return self


class StallingProxy:
    """Forwards Kafka connections; :meth:`stall` holds back Produce requests of some clients.

    Kafka requests are length-prefixed frames whose header starts with the API key
    (Produce is 0) and carries the client id, so the proxy can stop one client's
    writes while its fetches, commits and heartbeats, and every other client,
    go on: an output topic that has stopped accepting writes, as the worker sees it.
    Runs on its own thread and event loop, so tests may block.
    """

    PRODUCE = 0

    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.held = 0  # produce requests held back so far
        self._stalled: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._release: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> StallingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> None:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    def stall(self, client_id_prefix: str) -> None:
        def go() -> None:
            assert self._release is not None
            self._stalled.add(client_id_prefix)
            self._release.clear()

        self._loop.call_soon_threadsafe(go)

    def release(self) -> None:
        def go() -> None:
            assert self._release is not None
            self._stalled.clear()
            self._release.set()

        self._loop.call_soon_threadsafe(go)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _is_stalled(self, frame: bytes) -> bool:
        if len(frame) < 10 or int.from_bytes(frame[0:2], "big", signed=True) != self.PRODUCE:
            return False
        length = int.from_bytes(frame[8:10], "big", signed=True)
        client = frame[10 : 10 + length].decode("utf-8", "replace") if length > 0 else ""
        return any(client.startswith(prefix) for prefix in self._stalled)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def requests() -> None:
            while True:
                size = await reader.readexactly(4)
                frame = await reader.readexactly(int.from_bytes(size, "big"))
                if self._is_stalled(frame):
                    self.held += 1
                    assert self._release is not None
                    await self._release.wait()
                up_writer.write(size + frame)
                await up_writer.drain()

        async def responses() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(requests()), asyncio.create_task(responses())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
