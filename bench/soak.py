"""The soak: a queue's life at a steady load on a realistic table, one JSON line a minute.

    python bench/soak.py run --dsn DSN --system curate --minutes 30 [--rows 1000000]
    python bench/soak.py run --dsn DSN --system pgqueuer --minutes 30 --rate R

`bench/run.py --soak [MINUTES]` runs both, PgQueuer at the producer rate curate's run set,
and appends their lines to the run's results file. What is measured, and why so:

- **The table** (curate): 1,000,000 rows of ``pages`` with a ~2 KB body, four secondary
  indexes and two workflows on the same rows, ``fetch`` then ``parse`` (see
  bench/runners/curate_soak.py), in a throw-away schema dropped at the end. PgQueuer's jobs
  live in its own table and carry a page id (bench/runners/pgqueuer_soak.py).
- **The rate**: first a drain of the loaded table measures what the workers can do (rows
  queued at once, ~10 % of the table up to 20,000, until every one is through both
  stages); then a producer queues rows at ``--share`` (50 %) of that rate, a batch every
  100 ms, each batch one committed transaction (curate: ``Workflow.queue`` on the domain
  rows; PgQueuer: one ``enqueue`` of its jobs). Rows are taken in a fixed stride through
  the table, so updates spread over it as a recrawl's do and no row is queued twice
  within one pass.
- **Each minute** (``--minute-seconds``, 60): items through both stages per second,
  the queued backlog at the minute's end (server-side), claim p50/p99 of every claim
  statement the workers ran (curate's run observer; PgQueuer's ``dequeue`` timed around),
  and of the measured table: ``pg_table_size`` (heap, TOAST, maps), ``pg_indexes_size``,
  dead tuples, HOT updates ÷ updates in the minute, vacuums and analyzes in the minute,
  and the server's WAL bytes in the minute (server-wide: other sessions count too).
- **Autovacuum** as the server has it. Where the server runs with ``autovacuum = off``
  (this machine's CI server does), a stand-in does what a stock autovacuum would for the
  schema's tables: every ``autovacuum_naptime`` it VACUUMs those whose dead (or inserted)
  tuples pass autovacuum's thresholds and ANALYZEs those whose changes do, throttled by
  autovacuum's cost delay and limit, all read from the server's settings; the summary
  says which ran.
- **The targets**, computed at the end into the ``soak_summary`` line: *keeps up* (the
  backlog at the end of every minute is at most 10 seconds of production); *claim p99
  ≤ 5 ms* in every minute; *table + index bytes* at the end ≤ 1.3 times those at the end of
  minute 5 (of minute 1 in a run of five minutes or fewer).

The workers are started and released as the other measures' are (protocol.py's
``ready``/``go``) and report every 100 ms what they did (``protocol.Tally``). Standard
library, asyncpg and psutil here; the system's side is imported from bench/runners.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "runners"))

import asyncpg
import protocol

log = logging.getLogger("bench.soak")

SYSTEMS = ("curate", "pgqueuer")
DEFAULT_MINUTES = 30
DEFAULT_ROWS = 1_000_000
SHARE = 0.5
"""The producer's rate as a share of the measured drain rate."""
TICK_SECONDS = 0.1
"""The producer commits one batch this often."""
CALIBRATION_MAX_ROWS = 20_000
CALIBRATION_MAX_SECONDS = 300.0
KEEP_UP_SECONDS = 10.0
"""A minute keeps up when its closing backlog is at most this many seconds of production."""
CLAIM_P99_TARGET_MS = 5.0
GROWTH_TARGET = 1.3
GROWTH_BASE_MINUTE = 5

Line = dict[str, Any]


# --- which rows, in which order -----------------------------------------------------------


@dataclass
class Order:
    """Row ids 1..rows in a fixed stride (coprime with ``rows``): spread over the table,
    each once per pass."""

    rows: int
    taken: int = 0
    stride: int = field(init=False)

    def __post_init__(self) -> None:
        stride = max(1, int(self.rows * 0.618))
        while math.gcd(stride, self.rows) != 1:
            stride += 1
        self.stride = stride

    def take(self, count: int) -> list[int]:
        ids = [(k * self.stride) % self.rows + 1 for k in range(self.taken, self.taken + count)]
        self.taken += count
        return ids


# --- what the server says -----------------------------------------------------------------

TABLE_SQL = """
SELECT pg_table_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes,
       pg_relation_size(c.oid) AS heap_bytes, s.n_live_tup, s.n_dead_tup, s.n_tup_upd,
       s.n_tup_hot_upd, s.vacuum_count + s.autovacuum_count AS vacuums,
       s.analyze_count + s.autoanalyze_count AS analyzes
FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE s.schemaname = $1 AND s.relname = $2
"""
WAL_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"


async def server_state(conn: asyncpg.Connection, schema: str, tables: Sequence[str]) -> Line:
    """Each measured table's row of `TABLE_SQL`, and the WAL position."""
    state: Line = {"wal": await conn.fetchval(WAL_SQL)}
    for table in tables:
        row = await conn.fetchrow(TABLE_SQL, schema, table)
        if row is None:
            raise RuntimeError(f"no statistics for {schema}.{table}")
        state[table] = dict(row)
    return state


def table_figures(now: Line, before: Line) -> Line:
    """The per-minute figures of one table from two `TABLE_SQL` rows."""
    updates = now["n_tup_upd"] - before["n_tup_upd"]
    hot = now["n_tup_hot_upd"] - before["n_tup_hot_upd"]
    return {
        "table_bytes": now["table_bytes"],
        "index_bytes": now["index_bytes"],
        "heap_bytes": now["heap_bytes"],
        "live_tuples": now["n_live_tup"],
        "dead_tuples": now["n_dead_tup"],
        "updates": updates,
        "hot_updates": hot,
        "hot_update_ratio": round(hot / updates, 4) if updates else None,
        "vacuums": now["vacuums"] - before["vacuums"],
        "analyzes": now["analyzes"] - before["analyzes"],
    }


# --- a stock autovacuum, where the server has none ------------------------------------------

CANDIDATES_SQL = """
SELECT s.relname, s.n_dead_tup, s.n_ins_since_vacuum, s.n_mod_since_analyze,
       greatest(c.reltuples, 0) AS reltuples
FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
WHERE s.schemaname = $1
"""
SETTINGS_SQL = """
SELECT name, setting::float FROM pg_settings
WHERE name LIKE 'autovacuum\\_%' AND vartype IN ('integer', 'real') OR name = 'vacuum_cost_limit'
"""


async def stand_in_autovacuum(dsn: str, schema: str, time_scale: float) -> None:
    """Until cancelled: every naptime (times ``time_scale``), VACUUM and ANALYZE the schema's
    tables as autovacuum would at the server's thresholds, cost delay and cost limit.

    Its rounds fall half a naptime off the minutes' ends, so a minute's figures are not
    always read just before (or just after) a VACUUM."""
    conn = await asyncpg.connect(dsn)
    try:
        s = {row["name"]: row["setting"] for row in await conn.fetch(SETTINGS_SQL)}
        limit = s["autovacuum_vacuum_cost_limit"]
        await conn.execute(f"SET vacuum_cost_delay = {s['autovacuum_vacuum_cost_delay']:g}")
        await conn.execute(
            f"SET vacuum_cost_limit = {limit if limit > 0 else s['vacuum_cost_limit']:g}"
        )
        naptime = s["autovacuum_naptime"] * time_scale
        await asyncio.sleep(naptime / 2)
        while True:
            await asyncio.sleep(naptime)
            for row in await conn.fetch(CANDIDATES_SQL, schema):
                tuples = row["reltuples"]
                vacuum = row["n_dead_tup"] > (
                    s["autovacuum_vacuum_threshold"] + s["autovacuum_vacuum_scale_factor"] * tuples
                ) or row["n_ins_since_vacuum"] > (
                    s["autovacuum_vacuum_insert_threshold"]
                    + s["autovacuum_vacuum_insert_scale_factor"] * tuples
                )
                analyze = row["n_mod_since_analyze"] > (
                    s["autovacuum_analyze_threshold"]
                    + s["autovacuum_analyze_scale_factor"] * tuples
                )
                table = f'"{schema}"."{row["relname"]}"'
                if vacuum:
                    await conn.execute(f"VACUUM {'(ANALYZE) ' if analyze else ''}{table}")
                elif analyze:
                    await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close(timeout=5)


# --- the measure --------------------------------------------------------------------------


def merge(reports: Sequence[Line]) -> Line:
    """The workers' reports since the last call, summed: claim times and counts."""
    merged: Line = {"claims_ms": [], "empty_claims": 0}
    for report in reports:
        for key, value in report.items():
            merged[key] = merged.get(key, 0 if not isinstance(value, list) else []) + value
    return merged


def take_reports(started: Sequence[protocol.Worker]) -> Line:
    taken: list[Line] = []
    for worker in started:
        taken += worker.reports
        worker.reports = []
    return merge(taken)


@dataclass
class Producer:
    """Queues ``rate`` rows a second, a batch every tick, each batch committed on its own;
    a late batch is made up by the next, so the rate holds."""

    enqueue: Any
    order: Order
    rate: float
    produced: int = 0
    slowest_ms: float = 0.0
    """The longest batch since the last minute took (its queueing statement and commit)."""

    async def run(self) -> None:
        begun = time.monotonic()
        tick = 0
        while True:
            tick += 1
            due = int(self.rate * TICK_SECONDS * tick)
            if due > self.produced:
                started = time.perf_counter()
                await self.enqueue(self.order.take(due - self.produced))
                self.slowest_ms = max(self.slowest_ms, (time.perf_counter() - started) * 1000)
                self.produced = due
            await asyncio.sleep(max(0.0, begun + tick * TICK_SECONDS - time.monotonic()))


async def calibrate(
    enqueue: Any, order: Order, count: int, started: Sequence[protocol.Worker]
) -> tuple[float, float]:
    """Queue ``count`` rows at once and time them through both stages: (rows/s, seconds)."""
    clock = time.perf_counter()
    await enqueue(order.take(count))
    done = 0
    while done < count:
        protocol._check_alive(started)
        if time.perf_counter() - clock > CALIBRATION_MAX_SECONDS:
            raise RuntimeError(f"calibration: {done} of {count} rows done after the limit")
        await asyncio.sleep(protocol.POLL_SECONDS)
        done += take_reports(started).get("done", 0)
    seconds = time.perf_counter() - clock
    return count / seconds, seconds


async def wait_minute(
    until: float, started: Sequence[protocol.Worker], tasks: Sequence[asyncio.Task[None]]
) -> None:
    """Sleep until ``until`` (monotonic), failing at once if a worker or one of ``tasks``
    (the producer, the stand-in autovacuum), which run until cancelled, ended."""
    while (remaining := until - time.monotonic()) > 0:
        protocol._check_alive(started)
        for task in tasks:
            if task.done():
                task.result()  # its exception
                raise RuntimeError(f"{task.get_name()} stopped")
        await asyncio.sleep(min(1.0, remaining))


def minute_line(
    system: str,
    minute: int,
    seconds: float,
    produced: int,
    work: Line,
    backlog: int,
    state: Line,
    before: Line,
    tables: Sequence[str],
) -> Line:
    claims = sorted(work["claims_ms"])
    measured, *others = tables
    return {
        "measure": "soak",
        "system": system,
        "minute": minute,
        "items_per_s": round(work.get("done", 0) / seconds, 1),
        "produced": produced,
        "done": work.get("done", 0),
        "fetched": work.get("fetched", 0),
        "failed": work.get("failed", 0),
        "rescued": work.get("rescued", 0),
        "queued_backlog": backlog,
        "claims": len(claims),
        "empty_claims": work["empty_claims"],
        "claim_p50_ms": protocol.percentile(claims, 50),
        "claim_p99_ms": protocol.percentile(claims, 99),
        "claim_max_ms": protocol.percentile(claims, 100),
        **table_figures(state[measured], before[measured]),
        "wal_bytes": state["wal"] - before["wal"],
        "other_tables": {t: table_figures(state[t], before[t]) for t in others},
    }


async def soak(side: Any, ctx: protocol.Context) -> None:
    """Load, calibrate (unless ``--rate``), then produce and measure minute by minute;
    print each minute's line and the summary as they come."""
    args = ctx.args
    async with protocol.throwaway_schema(ctx) as conn:
        log.info("%s: setting up %s (%s rows)", side.name, ctx.schema, f"{args.rows:,}")
        setup = await side.setup(ctx, conn)
        server_autovacuum = await conn.fetchval("SHOW autovacuum") == "on"
        time_scale = args.minute_seconds / 60
        vacuuming = None
        if not server_autovacuum:
            vacuuming = asyncio.create_task(
                stand_in_autovacuum(ctx.dsn, ctx.schema, time_scale), name="stand-in autovacuum"
            )
        order = Order(args.rows)
        try:
            async with (
                side.producer(ctx) as enqueue,
                protocol.workers(ctx, args.workers) as started,
            ):
                await protocol.go(started)
                drain_rate = calibration_seconds = None
                count = calibration_rows(args)
                if args.rate is None:
                    drain_rate, calibration_seconds = await calibrate(
                        enqueue, order, count, started
                    )
                rate = args.rate if args.rate is not None else args.share * drain_rate
                log.info("%s: producing %.0f rows/s for %g minutes", side.name, rate, args.minutes)
                if rate * 120 > args.rows:
                    log.warning("rows come round again within 2 minutes: use more --rows")
                producer = Producer(enqueue, order, rate)
                background = [] if vacuuming is None else [vacuuming]
                lines = await measure_minutes(side, ctx, conn, started, producer, background)
        finally:
            if vacuuming is not None:
                vacuuming.cancel()
                await asyncio.gather(vacuuming, return_exceptions=True)
    summary = {
        "measure": "soak_summary",
        "system": side.name,
        "version": side.version(),
        "rows": args.rows,
        "minutes": args.minutes,
        "minute_seconds": args.minute_seconds,
        "share": args.share if drain_rate is not None else None,
        "drain_rate": round(drain_rate, 1) if drain_rate is not None else None,
        "calibration_rows": count if drain_rate is not None else None,
        "calibration_seconds": round(calibration_seconds, 2) if calibration_seconds else None,
        "rate": round(rate, 1),
        "jobs": producer.produced,
        "done": sum(line["done"] for line in lines),
        "autovacuum": "server" if server_autovacuum else "stand-in (the server has it off)",
        "setup": setup,
        "targets": targets(lines, rate),
        "settings": {**side.settings(ctx), "workers": args.workers, "tick_seconds": TICK_SECONDS},
    }
    print(json.dumps(summary), flush=True)


async def measure_minutes(
    side: Any,
    ctx: protocol.Context,
    conn: asyncpg.Connection,
    started: Sequence[protocol.Worker],
    producer: Producer,
    background: list[asyncio.Task[None]],
) -> list[Line]:
    """Run the producer for ``--minutes``; one line per minute, printed as it closes."""
    args = ctx.args
    before = await server_state(conn, ctx.schema, side.tables)
    take_reports(started)  # what the calibration left
    producing = asyncio.create_task(producer.run(), name="producer")
    begun = time.monotonic()
    lines: list[Line] = []
    produced = 0
    try:
        for minute in range(1, int(args.minutes) + 1):
            until = begun + minute * args.minute_seconds
            await wait_minute(until, started, [producing, *background])
            work = take_reports(started)
            made, produced = producer.produced - produced, producer.produced
            backlog = await conn.fetchval(side.backlog_sql)
            state = await server_state(conn, ctx.schema, side.tables)
            line = minute_line(
                side.name,
                minute,
                args.minute_seconds,
                made,
                work,
                backlog,
                state,
                before,
                side.tables,
            )
            line["producer_slowest_ms"] = round(producer.slowest_ms, 1)
            producer.slowest_ms = 0.0
            for worker in started:
                worker.sample_rss()
            line["worker_peak_rss_mb"] = protocol.megabytes(max(w.peak_rss for w in started))
            print(json.dumps(line), flush=True)
            lines.append(line)
            before = state
    finally:
        producing.cancel()
        await asyncio.gather(producing, return_exceptions=True)
    return lines


def calibration_rows(args: argparse.Namespace) -> int:
    return args.calibration_rows or max(100, min(args.rows // 10, CALIBRATION_MAX_ROWS))


# --- the targets --------------------------------------------------------------------------


def targets(lines: Sequence[Line], rate: float) -> Line:
    """The three verdicts of the issue from the minute lines ({} without any minute)."""
    if not lines:
        return {}
    bound = rate * KEEP_UP_SECONDS
    worst = max(lines, key=lambda line: line["queued_backlog"])
    slowest = max(lines, key=lambda line: line["claim_p99_ms"] or math.inf)
    base_minute = GROWTH_BASE_MINUTE if len(lines) > GROWTH_BASE_MINUTE else 1
    base = _bytes(lines[base_minute - 1])
    end = _bytes(lines[-1])
    return {
        "keeps_up": {
            "met": worst["queued_backlog"] <= bound,
            "bound": round(bound),
            "worst_backlog": worst["queued_backlog"],
            "worst_minute": worst["minute"],
        },
        "claim_p99": {
            "met": all(
                line["claim_p99_ms"] is not None and line["claim_p99_ms"] <= CLAIM_P99_TARGET_MS
                for line in lines
            ),
            "bound_ms": CLAIM_P99_TARGET_MS,
            "worst_p99_ms": slowest["claim_p99_ms"],
            "worst_minute": slowest["minute"],
        },
        "growth": {
            "met": end <= GROWTH_TARGET * base,
            "bound": GROWTH_TARGET,
            "ratio": round(end / base, 3) if base else None,
            "base_minute": base_minute,
            "base_bytes": base,
            "end_bytes": end,
        },
    }


def _bytes(line: Line) -> int:
    return int(line["table_bytes"]) + int(line["index_bytes"])


# --- the command line ---------------------------------------------------------------------


def parser(side: Any) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", required=True, help="postgresql://user@host:port/db")
    common.add_argument("--system", choices=SYSTEMS, required=True)
    common.add_argument("--minutes", type=int, default=DEFAULT_MINUTES)
    common.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help="rows of the table (PgQueuer: page ids)"
    )
    common.add_argument("--share", type=float, default=SHARE, help="of the drain rate")
    common.add_argument("--rate", type=float, help="rows/s to produce (no calibration)")
    common.add_argument("--minute-seconds", type=float, default=60.0, help="a report interval")
    common.add_argument("--workers", type=int, default=1, help="worker processes")
    common.add_argument("--calibration-rows", type=int, help="rows of the calibration drain")
    if side is not None:
        side.add_arguments(common)
    top = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("run", parents=[common], help="the soak of one system")
    worker = commands.add_parser("worker", parents=[common])
    worker.add_argument("--schema", required=True)
    worker.add_argument("--measure", required=True)
    return top


def load_side(argv: Sequence[str]) -> Any:
    """The ``--system``'s side (bench/runners/<system>_soak.py), or None for ``--help``."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--system", choices=SYSTEMS)
    known, _ = first.parse_known_args(argv)
    if known.system is None:
        return None
    return importlib.import_module(f"{known.system}_soak").SIDE


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    side = load_side(argv)
    args = parser(side).parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING if args.command == "worker" else logging.INFO,
        format=f"%(asctime)s soak {args.system} {args.command} %(levelname)s: %(message)s",
    )
    script = os.path.abspath(sys.argv[0])
    if args.command == "worker":
        ctx = protocol.Context(args.system, args.dsn, args.schema, "soak", args, script)
        protocol.serve_worker(side, ctx)
        return
    schema = f"bench_soak_{args.system}_{secrets.token_hex(4)}"
    ctx = protocol.Context(args.system, args.dsn, schema, "soak", args, script)

    async def run() -> None:
        protocol.cancel_on_sigterm()
        await soak(side, ctx)

    asyncio.run(run())


if __name__ == "__main__":
    main()
