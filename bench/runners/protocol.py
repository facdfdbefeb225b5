"""The protocol every benchmark runner speaks; each ``<system>_runner.py`` only adds its system.

    python bench/runners/<system>_runner.py drain --dsn DSN --n N --workers W [--mode M]
    python bench/runners/<system>_runner.py latency --dsn DSN --rate 50 --seconds 10 [--notify on]

The parent makes a throw-away schema ``bench_<system>_<hex>``, lets the system install its
tables there, queues the work, starts worker processes (this same script, hidden ``worker``
sub-command), and after each has printed ``ready`` sends ``go`` to all of them. ``drain``
times from ``go`` until no job is left (polled every 10 ms) and samples every worker's RSS;
``latency`` enqueues one job every 1/rate s and compares each commit time with the time the
job's service started (the worker prints ``started <seq> <time>``). One JSON line goes to
stdout (drain: always with ``completed`` and ``timed_out``; latency: with ``enqueued``);
logs go to stderr. The bulk load is followed by ANALYZE of the schema's tables; the latency
measure waits 1 s after ``go`` before its first job. SIGTERM to the parent stops the
workers and drops the schema; a worker that dies makes the measure fail (exit 1).
bench/soak.py starts its workers the same way (`workers`, `serve_worker`); they send
``report <json>`` lines of what they did (`Tally`).
Only the standard library, psutil and asyncpg are used here, so this file runs in every
bench environment (main venv, peers venv, the Python 3.12 one).
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as distribution_version
from typing import Any, TextIO

import asyncpg
import psutil

log = logging.getLogger("bench")

POLL_SECONDS = 0.010
"""How often the parent asks the database whether any job is left."""
RSS_SECONDS = 0.100
"""How often the parent samples the workers' resident memory."""
READY_TIMEOUT_SECONDS = 120.0
TERMINATE_GRACE_SECONDS = 5.0
PICKUP_SETTLE_SECONDS = 1.0
"""Pause between ``go`` and the first latency job, so the worker is listening/polling."""
PICKUP_TAIL_SECONDS = 10.0
"""How long the latency measure waits for the last jobs to start after the last enqueue."""
REPORT_SECONDS = 0.1
"""How often a soak worker reports what it did (see `Tally`)."""

Enqueue = Callable[[int], Awaitable[None]]
"""Queue the job with sequence number ``seq`` in one committed transaction."""
Ready = Callable[[], Awaitable[None]]
"""Say ``ready`` to the parent; returns when it says ``go``."""


@dataclass
class Context:
    """What a runner knows of the current run, in the parent and in every worker."""

    system: str
    dsn: str
    """A plain ``postgresql://user@host:port/db`` URL."""
    schema: str
    measure: str
    """``drain`` or ``pickup``."""
    args: argparse.Namespace
    script: str = ""
    """This runner's path, to start workers with."""

    @property
    def pickup(self) -> bool:
        return self.measure == "pickup"

    @property
    def notify(self) -> bool:
        """Whether the latency measure asked for LISTEN/NOTIFY (drain: the system's default)."""
        return not self.pickup or self.args.notify == "on"


class System(abc.ABC):
    """One system under test. Subclasses set the class attributes and the abstract methods."""

    name: str
    """Short name, used in the JSON output and in the schema name."""
    distribution: str
    """The package whose version is reported."""
    any_unfinished_sql: str
    """One row, one value: true while any job is queued or running (cheap: it runs every 10 ms)."""
    count_unfinished_sql: str
    """One row, one value: how many jobs are queued or running (runs once, at the end)."""
    modes: Sequence[str] = ("per_item",)
    """The ``--mode`` values this system knows."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 (optional)
        """Add the system's own flags (concurrency, batch size, ...)."""

    def version(self) -> str:
        return distribution_version(self.distribution)

    async def drain_extras(self, ctx: Context, conn: asyncpg.Connection) -> dict[str, Any]:
        """Extra fields for the drain result (the naive loop counts its duplicates)."""
        return {}

    @abc.abstractmethod
    def settings(self, ctx: Context) -> dict[str, Any]:
        """What the system runs with (concurrency, batch, polling, ...), for the JSON output."""

    @abc.abstractmethod
    async def setup(self, ctx: Context, conn: asyncpg.Connection) -> None:
        """Install the system's tables in ``ctx.schema`` (``conn``'s search_path is set to it)."""

    @abc.abstractmethod
    async def enqueue_bulk(self, ctx: Context, conn: asyncpg.Connection, n: int) -> None:
        """Queue ``n`` no-op jobs (sequence numbers 1..n), fast, before the clock starts."""

    @abc.abstractmethod
    def producer(
        self, ctx: Context, conn: asyncpg.Connection
    ) -> contextlib.AbstractAsyncContextManager[Enqueue]:
        """An ``enqueue(seq)`` that queues one job per committed transaction (latency)."""

    @abc.abstractmethod
    async def work(self, ctx: Context, ready: Ready) -> None:
        """The worker process: import, connect, ``await ready()`` (returns on ``go``), then
        process jobs until SIGTERM. A pickup job's service calls `report_start` first."""


@contextlib.asynccontextmanager
async def sql_producer(conn: asyncpg.Connection, statement: str) -> AsyncIterator[Enqueue]:
    """An ``enqueue(seq)`` that runs ``statement`` with ``$1 = seq`` (autocommit)."""

    async def enqueue(seq: int) -> None:
        await conn.execute(statement, seq)

    yield enqueue


async def analyze_schema(conn: asyncpg.Connection, schema: str) -> None:
    """ANALYZE the schema's tables after the bulk load, as autovacuum would soon do."""
    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    for table in tables:
        await conn.execute(f'ANALYZE {schema}."{table["tablename"]}"')


# -- the worker side ----------------------------------------------------------------------

_protocol_out: TextIO | None = None


def report_start(seq: int) -> None:
    """Called by a no-op service as it starts (latency measure): tell the parent when."""
    now = time.time()
    assert _protocol_out is not None
    _protocol_out.write(f"started {seq} {now:.6f}\n")


def report(fields: dict[str, Any]) -> None:
    """Send the parent one ``report <json>`` line (the soak's claims and completions)."""
    assert _protocol_out is not None
    _protocol_out.write(f"report {json.dumps(fields)}\n")


@dataclass
class Tally:
    """What a soak worker did since its last report: claim durations (ms) and outcomes.

    `report_every` sends it to the parent as ``report`` lines and starts afresh, so the
    parent sums reports into its minutes; a worker sends nothing while idle."""

    claims_ms: list[float] = field(default_factory=list)
    empty_claims: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    """``done`` (through the last stage), ``fetched`` (the first stage), ``failed`` (an
    item that ended otherwise), ``rescued`` (rows this worker's rescuer returned)."""

    def claimed(self, workflow: str, count: int, seconds: float) -> None:
        """One claim statement (the signature of a curate run observer's)."""
        self.claims_ms.append(seconds * 1000)
        self.empty_claims += count == 0

    def rescued(self, workflow: str, count: int) -> None:
        self.count("rescued", count)

    def count(self, what: str, number: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + number

    async def report_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            if self.claims_ms or self.counts:
                claims = [round(ms, 3) for ms in self.claims_ms]
                fields = {"claims_ms": claims, "empty_claims": self.empty_claims}
                report({**fields, **self.counts})
                self.claims_ms, self.empty_claims, self.counts = [], 0, {}


def stop_on_sigterm() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT, for systems that do not handle signals themselves."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _worker_main(system: System, ctx: Context) -> None:
    async def ready() -> None:
        assert _protocol_out is not None
        _protocol_out.write("ready\n")
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"worker: expected 'go', got {line!r}")

    await system.work(ctx, ready)


def _take_stdout() -> None:
    """Keep stdout for protocol lines only; anything else printed goes to stderr."""
    global _protocol_out
    _protocol_out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr


# -- the parent side ----------------------------------------------------------------------


@dataclass
class Worker:
    """One worker process, seen from the parent."""

    process: asyncio.subprocess.Process
    started: dict[int, float] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    """``report`` lines not yet taken by the parent (see `Tally`)."""
    peak_rss: int = 0
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _progress: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        """Consume the worker's protocol lines until it closes stdout."""
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            words = raw.decode().split()
            if words == ["ready"]:
                self._ready.set()
            elif len(words) == 3 and words[0] == "started":
                self.started[int(words[1])] = float(words[2])
                self._progress.set()
            elif words and words[0] == "report":
                self.reports.append(json.loads(raw.decode().split(" ", 1)[1]))
            elif words:
                log.warning("worker %s said %r", self.process.pid, raw)

    async def wait_started(self, count: int, seconds: float) -> None:
        """Wait until ``count`` jobs have reported their start, or ``seconds`` have passed."""
        deadline = time.monotonic() + seconds
        while (
            len(self.started) < count
            and self.process.returncode is None
            and (remaining := deadline - time.monotonic()) > 0
        ):
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)

    def sample_rss(self) -> None:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(self.process.pid)
            rss = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
            self.peak_rss = max(self.peak_rss, rss)


@contextlib.asynccontextmanager
async def workers(ctx: Context, count: int) -> AsyncIterator[list[Worker]]:
    """Start ``count`` worker processes, wait until all are ready; terminate them on exit."""
    argv = [
        sys.executable,
        ctx.script,
        "worker",
        *sys.argv[2:],
        "--schema",
        ctx.schema,
        "--measure",
        ctx.measure,
    ]
    started: list[Worker] = []
    try:
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            worker = Worker(process)
            worker._reader = asyncio.create_task(worker.read())
            started.append(worker)
        await _all_ready(started)
        yield started
    finally:
        await _terminate(started)


async def _all_ready(started: list[Worker]) -> None:
    waits = [asyncio.create_task(w._ready.wait()) for w in started]
    exits = [asyncio.create_task(w.process.wait()) for w in started]
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not all(t.done() for t in waits):
            if any(t.done() for t in exits):
                raise RuntimeError("a worker exited before it was ready (see its stderr)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after {READY_TIMEOUT_SECONDS:g} s")
            await asyncio.wait([*waits, *exits], timeout=1, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [*waits, *exits]:
            task.cancel()


def _check_alive(started: list[Worker]) -> None:
    """Stop the measure if a worker died (its stderr says why)."""
    dead = [w.process.pid for w in started if w.process.returncode is not None]
    if dead:
        raise RuntimeError(f"worker(s) {dead} exited during the measure (see stderr)")


async def go(started: list[Worker]) -> None:
    """Send ``go`` to every worker."""
    for worker in started:
        assert worker.process.stdin is not None
        worker.process.stdin.write(b"go\n")
    await asyncio.gather(*(w.process.stdin.drain() for w in started if w.process.stdin))


async def _terminate(started: list[Worker]) -> None:
    """SIGTERM, then SIGKILL whoever is still there after the grace period."""
    for worker in started:
        if worker.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()
    waiting = [w.process.wait() for w in started]
    _, pending = await asyncio.wait(
        [asyncio.ensure_future(w) for w in waiting], timeout=TERMINATE_GRACE_SECONDS
    )
    if pending:
        log.warning("%d worker(s) still running after SIGTERM; killing", len(pending))
        for worker in started:
            if worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
        await asyncio.gather(*pending)
    for worker in started:
        if worker._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker._reader, 1)


@contextlib.asynccontextmanager
async def throwaway_schema(ctx: Context) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose search_path is a fresh schema, dropped (with all in it) at exit."""
    admin = await asyncpg.connect(ctx.dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {ctx.schema}")
        conn = await asyncpg.connect(ctx.dsn, server_settings={"search_path": ctx.schema})
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        try:
            await admin.execute(f"DROP SCHEMA IF EXISTS {ctx.schema} CASCADE")
        finally:
            await admin.close()


async def sample_rss(started: list[Worker], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for worker in started:
            worker.sample_rss()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RSS_SECONDS)


def megabytes(value: int) -> float:
    return round(value / 2**20, 1)


async def drain(system: System, ctx: Context) -> dict[str, Any]:
    """The drain measure: N queued jobs, W workers, seconds until none is left."""
    args = ctx.args
    async with throwaway_schema(ctx) as conn:
        await system.setup(ctx, conn)
        await system.enqueue_bulk(ctx, conn, args.n)
        await analyze_schema(conn, ctx.schema)
        log.info(
            "%s: %d jobs queued in %s; starting %d worker(s)",
            ctx.system,
            args.n,
            ctx.schema,
            args.workers,
        )
        async with workers(ctx, args.workers) as started:
            stop = asyncio.Event()
            await go(started)
            clock = time.perf_counter()
            sampler = asyncio.create_task(sample_rss(started, stop))
            timed_out = False
            while await conn.fetchval(system.any_unfinished_sql):
                _check_alive(started)
                if time.perf_counter() - clock > args.max_seconds:
                    timed_out = True
                    break
                await asyncio.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - clock
            stop.set()
            await sampler
            left = await conn.fetchval(system.count_unfinished_sql)
            extras = await system.drain_extras(ctx, conn)
    completed = args.n - int(left)
    peaks = [megabytes(w.peak_rss) for w in started]
    return {
        "system": system.name,
        "version": system.version(),
        "measure": "drain",
        "n": args.n,
        "workers": args.workers,
        "mode": args.mode,
        "seconds": round(seconds, 4),
        "per_second": round(completed / seconds, 1),
        "peak_rss_mb": max(peaks),
        "peak_rss_mb_per_worker": peaks,
        "completed": completed,
        "timed_out": timed_out,
        **extras,
        "settings": system.settings(ctx),
    }


async def latency(system: System, ctx: Context) -> dict[str, Any]:
    """The pick-up measure: one job every 1/rate s; from its commit to its service starting."""
    args = ctx.args
    total = max(1, round(args.rate * args.seconds))
    committed: dict[int, float] = {}
    async with throwaway_schema(ctx) as conn:
        await system.setup(ctx, conn)
        async with system.producer(ctx, conn) as enqueue, workers(ctx, 1) as started:
            await go(started)
            await asyncio.sleep(PICKUP_SETTLE_SECONDS)
            begin = time.perf_counter()
            for seq in range(1, total + 1):
                delay = begin + (seq - 1) / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await enqueue(seq)
                committed[seq] = time.time()
                _check_alive(started)
            await started[0].wait_started(total, PICKUP_TAIL_SECONDS)
            seen = dict(started[0].started)
    millis = sorted((seen[s] - committed[s]) * 1000 for s in committed if s in seen)
    return {
        "system": system.name,
        "version": system.version(),
        "measure": "pickup",
        "notify": args.notify,
        "rate": int(args.rate) if float(args.rate).is_integer() else args.rate,
        "count": len(millis),
        "enqueued": total,
        "p50_ms": percentile(millis, 50),
        "p95_ms": percentile(millis, 95),
        "max_ms": percentile(millis, 100),
        "settings": system.settings(ctx),
    }


def percentile(ordered: Sequence[float], share: float) -> float | None:
    """The ``share``-th percentile of sorted values, interpolated linearly, rounded to
    0.01 (None if there are none)."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * share / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 2)


# -- the command line ---------------------------------------------------------------------


def _parser(system: System) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", required=True, help="postgresql://user@host:port/db")
    common.add_argument("--max-seconds", type=float, default=600.0, help="bound of a drain")
    system.add_arguments(common)
    drain_flags = argparse.ArgumentParser(add_help=False)
    drain_flags.add_argument("--n", type=int, default=10_000, help="jobs to drain")
    drain_flags.add_argument("--workers", type=int, default=1, help="worker processes")
    drain_flags.add_argument("--mode", choices=("per_item", "batched"), default="per_item")
    pickup_flags = argparse.ArgumentParser(add_help=False)
    pickup_flags.add_argument("--rate", type=float, default=50.0, help="jobs per second")
    pickup_flags.add_argument("--seconds", type=float, default=10.0, help="how long to enqueue")
    pickup_flags.add_argument("--notify", choices=("on", "off"), default="on")

    parser = argparse.ArgumentParser(description=f"{system.name}: see bench/runners/protocol.py")
    commands = parser.add_subparsers(dest="command", required=True)
    drain_command = commands.add_parser("drain", parents=[common, drain_flags], help="throughput")
    drain_command.set_defaults(notify="on")
    latency_command = commands.add_parser("latency", parents=[common, pickup_flags], help="pick-up")
    latency_command.set_defaults(mode="per_item")
    worker = commands.add_parser("worker", parents=[common, drain_flags, pickup_flags])
    worker.add_argument("--schema", required=True)
    worker.add_argument("--measure", choices=("drain", "pickup"), required=True)
    return parser


def main(system: System, argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the measure, or be a worker."""
    script = os.path.abspath(sys.argv[0])
    args = _parser(system).parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING if args.command == "worker" else logging.INFO,
        format=f"%(asctime)s {system.name} {args.command} %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "worker":
        serve_worker(
            system, Context(system.name, args.dsn, args.schema, args.measure, args, script)
        )
        return
    if getattr(args, "mode", "per_item") not in system.modes:
        raise SystemExit(f"{system.name} has no mode {args.mode!r} (known: {system.modes})")
    schema = f"bench_{system.name}_{secrets.token_hex(4)}"
    measure = "drain" if args.command == "drain" else "pickup"
    ctx = Context(system.name, args.dsn, schema, measure, args, script)
    result = asyncio.run(_measure(system, ctx))
    print(json.dumps(result), flush=True)


def serve_worker(system: Any, ctx: Context) -> None:
    """Be a worker process: protocol lines on stdout, ``system.work(ctx, ready)`` until
    SIGTERM (also the soak's, whose systems are not `System` subclasses)."""
    _take_stdout()
    asyncio.run(_worker_main(system, ctx))


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the running task, so workers are stopped and the schema dropped."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def _measure(system: System, ctx: Context) -> dict[str, Any]:
    """Run the measure (SIGTERM cancels it)."""
    cancel_on_sigterm()
    return await (drain if ctx.measure == "drain" else latency)(system, ctx)
