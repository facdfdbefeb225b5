"""Many worker hosts against one PostgreSQL: total throughput, each host's share, every item once.

    .venv/bin/python bench/hosts.py --hosts 1,2,4 --n 20000 [--mode per_item|batched]

As root (network namespaces). Each host is a network namespace joined to this one by a
veth pair (`tests.netns`); ONE PostgreSQL of the script's own (`tests.dedicated_server`)
listens on the root-side address of every link and nowhere else, so each worker's traffic
crosses its own link and the script talks only to addresses it made. For each host count
K: a fresh schema with curate_runner's table (a `curate.workflow_mixin` model,
``create_all``, curate's own tables), N items queued in one transaction, then one curate
worker per host (``ip netns exec NS python bench/hosts.py worker ...``: curate_runner's
worker under protocol.py's ready/go), released together; the clock runs from ``go`` until
no item is Queued or Processing. The service records which host ran each item in a side
table, ``bench_done``: with ``--record memory`` (default) kept in the worker and copied in
after it stops, so the service stays a no-op and the figures compare with
docs/benchmarks.md; with ``--record transaction`` inserted in the item's own session (in
the per-item mode it commits with Complete). One JSON line per K on stdout, with the CPU
seconds this run and everything else on the machine used during the drain
(``cpu_seconds``): the cores are shared, and another job's share explains a slow figure.
``done_once``: every item Complete on a single claim (``bench_attempts = 1``) and in
``bench_done`` exactly once. ``--repeat`` interleaves rounds of all the counts. A count is
bounded in time (``--max-seconds`` for the drain, plus start and stop); workers, server
and namespaces are removed however the script ends (SIGTERM and Ctrl-C included).

The links add no delay (this kernel has no netem): hosts are separated by real veth links
at loopback speed, and all of them share this machine's cores with the server. The server
runs with fsync off (as dedicated_server sets it), so absolute figures are optimistic; the
comparison across host counts is what this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "runners")]

import asyncpg  # noqa: E402
import cpu_time  # noqa: E402
import curate_runner  # noqa: E402
import protocol  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402
from tests.dedicated_server import DedicatedServer, dedicated_server  # noqa: E402
from tests.netns import Host, missing_netns, network_host  # noqa: E402

SYSTEM = curate_runner.Curate()
TABLE = curate_runner.TABLE
DONE_TABLE = "bench_done"
"""One row per service execution: (item, host). No key, so a second run of an item shows."""
SETUP_SECONDS = 180.0
"""What a host count may take besides its drain: start-up (ready), stop, the checks."""
CORES = psutil.cpu_count()
CONNECTIONS_PER_WORKER = 20
"""Server connections allowed per worker: its pool (concurrency + 2), LISTEN, headroom."""


# -- the worker (inside a host's namespace) ------------------------------------------------


class Recorder:
    """The drain service of this worker: a no-op that notes which host ran the item."""

    def __init__(self, label: str, record: str) -> None:
        self.label = label
        self.record = record
        self.ran: list[int] = []

    async def service(self, item_id: int, session: AsyncSession) -> None:
        if self.record == "memory":
            self.ran.append(item_id)
        else:  # in the session curate commits the outcome with (per-item mode)
            await session.execute(
                text(f"INSERT INTO {DONE_TABLE} (item_id, host) VALUES (:item, :host)"),
                {"item": item_id, "host": self.label},
            )

    async def flush(self, dsn: str, schema: str) -> None:
        """Copy what ran in memory into the side table, after the clock has stopped."""
        if not self.ran:
            return
        conn = await asyncpg.connect(dsn)
        try:
            records = [(item, self.label) for item in self.ran]
            await conn.copy_records_to_table(DONE_TABLE, records=records, schema_name=schema)
        finally:
            await conn.close()


def worker_main(argv: Sequence[str]) -> None:
    """curate_runner's worker with this host's service; the rest of ``argv`` is protocol.py's."""
    parser = argparse.ArgumentParser(prog="hosts.py worker")
    parser.add_argument("--label", required=True)
    parser.add_argument("--record", choices=("memory", "transaction"), required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    own, rest = parser.parse_known_args(argv)
    recorder = Recorder(own.label, own.record)
    # curate_runner.Curate.work hands its drain service, the module's `noop`, to the
    # workflow: replaced here so the worker is the benchmark's own, not a copy of it.
    assert callable(curate_runner.noop)
    curate_runner.noop = recorder.service
    protocol.main(SYSTEM, ["worker", "--dsn", own.dsn, "--schema", own.schema, *rest])
    asyncio.run(recorder.flush(own.dsn, own.schema))


# -- the parent (root namespace) -----------------------------------------------------------


def host_label(index: int) -> str:
    return f"host-{index + 1}"


def worker_command(
    ctx: protocol.Context, host: Host, server: DedicatedServer, label: str
) -> list[str]:
    """This script's ``worker`` in ``host``'s namespace, on the server's end of its link."""
    args = ctx.args
    flags = {
        "--label": label,
        "--record": args.record,
        "--dsn": replace(server, host=host.outer_address).url(),
        "--schema": ctx.schema,
        "--measure": "drain",
        "--mode": args.mode,
        "--n": args.n,
        "--max-seconds": args.max_seconds,
        "--concurrency": args.concurrency,
        "--batch-size": args.batch_size,
    }
    words = [str(word) for pair in flags.items() for word in pair]
    return host.command(sys.executable, __file__, "worker", *words)


@contextlib.asynccontextmanager
async def host_workers(
    ctx: protocol.Context, hosts: Sequence[Host], server: DedicatedServer
) -> AsyncIterator[list[protocol.Worker]]:
    """One worker per host, each connecting to the server on its own link; all ready on
    return (protocol.py's handshake); terminated on the way out. (protocol.workers starts
    its workers in this namespace, hence this one.)"""
    started: list[protocol.Worker] = []
    try:
        for index, host in enumerate(hosts):
            argv = worker_command(ctx, host, server, host_label(index))
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
                env={**os.environ, "CURATE_WORKER_ID": host_label(index)},
            )
            worker = protocol.Worker(process)
            worker._reader = asyncio.create_task(worker.read())
            started.append(worker)
        await protocol._all_ready(started)
        yield started
    finally:
        await protocol._terminate(started)


class CpuUse:
    """CPU seconds spent during the drain by this run (this script, its workers, its server)
    and by everything else on the machine: how much another job took of the shared cores."""

    def __init__(self, started: list[protocol.Worker], server: DedicatedServer) -> None:
        postmaster = cpu_time.postmaster_pid(server.data_dir)
        self.roots = [os.getpid(), postmaster, *(w.process.pid for w in started)]
        self.before = self._ours(), cpu_time.machine_busy_seconds()
        self.after = self.before

    def stop(self) -> None:
        self.after = self._ours(), cpu_time.machine_busy_seconds()

    def seconds(self) -> dict[str, float]:
        """``ours`` and ``others``: CPU seconds of the drain; ``cores``: how many there are."""
        ours = sum(used - self.before[0].get(pid, 0.0) for pid, used in self.after[0].items())
        others = self.after[1] - self.before[1] - ours
        return {"ours": round(ours, 2), "others": round(max(others, 0.0), 2), "cores": CORES}

    def _ours(self) -> dict[int, float]:
        """CPU seconds so far of each process of the run (the server's backends included)."""
        used: dict[int, float] = {}
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(root)
                for each in (process, *process.children(recursive=True)):
                    with contextlib.suppress(psutil.Error):
                        times = each.cpu_times()
                        used[each.pid] = times.user + times.system
        return used


async def drained(conn: asyncpg.Connection, started: list[protocol.Worker], bound: float) -> bool:
    """Poll until no item is Queued or Processing (True), or ``bound`` seconds pass (False)."""
    deadline = time.perf_counter() + bound
    while await conn.fetchval(SYSTEM.any_unfinished_sql):
        protocol._check_alive(started)
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(protocol.POLL_SECONDS)
    return True


async def connections_by_address(conn: asyncpg.Connection) -> dict[str, int]:
    """The server's client connections per source address (each host's own, or the veth
    was not crossed)."""
    rows = await conn.fetch(
        "SELECT host(client_addr) AS address, count(*) AS n FROM pg_stat_activity"
        " WHERE client_addr IS NOT NULL GROUP BY 1"
    )
    return {row["address"]: row["n"] for row in rows}


async def tally(conn: asyncpg.Connection, n: int) -> dict[str, Any]:
    """What the side table and curate's columns say once every worker has stopped."""
    per_host = {
        row["host"]: row["n"]
        for row in await conn.fetch(f"SELECT host, count(*) AS n FROM {DONE_TABLE} GROUP BY 1")
    }
    row = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE bench_status = 'Complete') AS complete,"
        f" count(*) FILTER (WHERE bench_status = 'Complete' AND bench_attempts = 1) AS once,"
        f" count(*) FILTER (WHERE bench_attempts > 1) AS claimed_again,"
        f" (SELECT count(*) FROM (SELECT item_id FROM {DONE_TABLE} GROUP BY 1"
        f"   HAVING count(*) > 1) AS twice) AS ran_again,"
        f" count(*) FILTER (WHERE NOT EXISTS"
        f"   (SELECT 1 FROM {DONE_TABLE} d WHERE d.item_id = i.id)) AS not_ran"
        f" FROM {TABLE} i"
    )
    counts = dict(row)
    done_once = (
        counts["once"] == n
        and sum(per_host.values()) == n
        and counts["ran_again"] == 0
        and counts["not_ran"] == 0
    )
    return {"per_host": per_host, "done_once": done_once, **counts}


async def measure(
    count: int, hosts: Sequence[Host], server: DedicatedServer, args: argparse.Namespace
) -> dict[str, Any]:
    """One host count: fresh schema, N queued, ``count`` workers released together."""
    schema = f"bench_hosts_{secrets.token_hex(4)}"
    ctx = protocol.Context(SYSTEM.name, server.url(), schema, "drain", args)
    used = hosts[:count]
    async with protocol.throwaway_schema(ctx) as conn:
        if await conn.fetchval("SHOW data_directory") != str(server.data_dir):
            raise RuntimeError(f"{server.url()} is not this script's server")
        await SYSTEM.setup(ctx, conn)
        await conn.execute(f"CREATE TABLE {DONE_TABLE} (item_id integer NOT NULL, host text)")
        await SYSTEM.enqueue_bulk(ctx, conn, args.n)
        await protocol.analyze_schema(conn, schema)
        async with host_workers(ctx, used, server) as started:
            stop = asyncio.Event()
            cpu = CpuUse(started, server)
            await protocol.go(started)
            clock = time.perf_counter()
            sampler = asyncio.create_task(protocol.sample_rss(started, stop))
            finished = await drained(conn, started, args.max_seconds)
            seconds = time.perf_counter() - clock
            cpu.stop()
            completed = args.n - await conn.fetchval(SYSTEM.count_unfinished_sql)
            stop.set()
            await sampler
            links = await connections_by_address(conn)
        counts = await tally(conn, args.n)  # the workers have stopped: memory records are in
    per_host = counts.pop("per_host")
    return {
        "system": SYSTEM.name,
        "version": SYSTEM.version(),
        "measure": "hosts",
        "hosts": count,
        "mode": args.mode,
        "record": args.record,
        "n": args.n,
        "seconds": round(seconds, 4),
        "items_per_s": round(completed / seconds, 1),
        "timed_out": not finished,
        "cpu_seconds": cpu.seconds(),
        **counts,
        "per_host": host_rows(used, started, per_host, links, args.n),
        "settings": {**SYSTEM.settings(ctx), "fsync": "off", "link": "veth, no delay"},
    }


def host_rows(
    hosts: Sequence[Host],
    started: Sequence[protocol.Worker],
    done: dict[str, int],
    links: dict[str, int],
    n: int,
) -> list[dict[str, Any]]:
    """Each host's items (from the side table), share, connections and peak memory."""
    rows = []
    for index, (host, worker) in enumerate(zip(hosts, started, strict=True)):
        count = done.get(host_label(index), 0)
        rows.append(
            {
                "host": host_label(index),
                "address": host.address,
                "done": count,
                "share": round(count / n, 4),
                "connections": links.get(host.address, 0),
                "peak_rss_mb": protocol.megabytes(worker.peak_rss),
            }
        )
    return rows


async def measure_all(
    counts: Sequence[int], hosts: Sequence[Host], server: DedicatedServer, args: argparse.Namespace
) -> None:
    """Each host count in turn, ``--repeat`` rounds of them interleaved (a busy machine's
    drift then falls on every count alike), each bounded in time; a failed one is a line
    with ``error``."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    for round_ in range(1, args.repeat + 1):
        for count in counts:
            try:
                async with asyncio.timeout(args.max_seconds + SETUP_SECONDS):
                    result = await measure(count, hosts, server, args)
            except Exception as exc:  # reported, and the next count runs
                result = {"measure": "hosts", "hosts": count, "mode": args.mode, "n": args.n}
                result["error"] = f"{type(exc).__name__}: {exc}"
            print(json.dumps({**result, "round": round_}), flush=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,2,4", help="host counts, comma-separated")
    parser.add_argument("--n", type=int, default=20_000, help="items per host count")
    parser.add_argument("--mode", choices=SYSTEM.modes, default="per_item")
    parser.add_argument(
        "--record",
        choices=("memory", "transaction"),
        default="memory",
        help="where the service notes its host: kept in the worker, copied in after the"
        " drain (a no-op service), or inserted in the item's session (committed with"
        " Complete per item; on its own, before the batched completion)",
    )
    parser.add_argument("--concurrency", type=int, default=10, help="items in flight per worker")
    parser.add_argument("--batch-size", type=int, default=100, help="items per claim")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound of a drain")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all the host counts")
    args = parser.parse_args(argv)
    args.counts = sorted({int(part) for part in args.hosts.split(",")})
    if not args.counts or args.counts[0] < 1:
        parser.error("--hosts wants positive counts, e.g. 1,2,4")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["worker"]:
        worker_main(argv[1:])
        return
    args = parse(argv)
    missing = missing_netns()
    if missing is not None:
        raise SystemExit(f"hosts.py needs network namespaces: {missing}")
    # SIGTERM unwinds like Ctrl-C: workers stopped, server stopped, namespaces deleted.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with contextlib.ExitStack() as stack:
            hosts = [stack.enter_context(network_host()) for _ in range(args.counts[-1])]
            server = stack.enter_context(
                dedicated_server(
                    conf=[f"max_connections = {CONNECTIONS_PER_WORKER * len(hosts) + 20}"],
                    hba=["local all all trust", *(host.hba for host in hosts)],
                    listen=[host.outer_address for host in hosts],
                )
            )
            try:
                asyncio.run(measure_all(args.counts, hosts, server, args))
            finally:  # the event loop put SIGTERM back to its default on closing
                signal.signal(signal.SIGTERM, signal.default_int_handler)
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise SystemExit("hosts.py: interrupted; workers, server and namespaces removed") from None


if __name__ == "__main__":
    main()
