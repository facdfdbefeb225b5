"""What one item costs the database server: statements, transactions, WAL and index entries.

    .venv/bin/python bench/item_cost.py [--rows 50000] [--items 10000]
        [--pgqueuer-python bench/.venv-peers/bin/python]

A status on the domain table means every claim and every outcome is an UPDATE of the
app's own row; when the status is indexed (the queued partial index's predicate is), that
update is not HOT, so it writes a new entry into every index of the table. This measures
it, for a narrow table (the drain benchmark's: a primary key and the workflow's columns)
and a realistic one (the soak's ``pages``: a ~2 KB body, four secondary indexes, two
workflows), in both of curate's outcome modes, on the same server in the same run; and,
with ``--pgqueuer-python``, for what a dedicated queue table costs instead: PgQueuer's
own, drained by its default consumer (batch 10) and with batch 100, as the drain
benchmark runs it (bench/runners/pgqueuer_cost.py, in PgQueuer's environment).

curate's cases are each measured twice, ``history`` off and on: off, the worker's settings
have ``CURATE_ATTEMPT_HISTORY=off`` and the schema has no ``curate_attempts``; on
(``=all``), the table is there (curate's own DDL: a primary key and two indexes) and every
outcome's statement, a completion's too, also inserts the attempt. curate's default,
``failures``, records no completion: on these drains, where every item completes, it costs
what off does. After the drain the case
checks that this is what happened: on, ``curate_attempts`` holds one completed attempt
per item and the worker's statements inserted into it; off, none of the worker's
statements named it. The history's writes are in the same server's WAL, B-trees and CPU
time, so the difference of the two lines is what the history costs an item.

Each case: a fresh schema on a PostgreSQL of the measure's own (tests/dedicated_server.py,
as root, with ``pg_stat_statements`` loaded, so no other client's statements count), the
table made and (curate) loaded with ``rows`` rows Complete, ``items`` queued (curate: an
UPDATE of their status; PgQueuer: its bulk enqueue), VACUUM ANALYZE, then one worker's
drain of the queue with a no-op service (as the `curate_worker` role, the only role
counted). Per item:

- ``queue_wal_bytes``: the WAL of queueing the items, the one cost before the drain;
- ``statements``: pg_stat_statements' calls of the worker role, BEGIN and COMMIT left
  out; and ``transactions`` committed in the database (pg_stat_database; the measure's
  own few are noise at this count);
- ``wal_bytes``, and the WAL records of heaps and of B-trees (each B-tree record an
  index entry written, or a page split), from pg_walinspect over the drain;
  ``fpi_bytes``, the full-page images among those bytes: 0 when no checkpoint fell
  inside the case (each case starts with one, and the server makes no other within an
  hour or 16 GB of WAL), which is what makes the WAL of cases comparable;
- ``hot_share``: HOT updates ÷ updates of the queued table (pg_stat_user_tables);
- ``server_cpu_us``: the CPU time of the server's processes during the drain (backends,
  WAL writer, checkpointer: what a larger server would have to provide per item), and
  ``exec_us``: the statements' execution time, pg_stat_statements' ``total_exec_time``;
- ``worker_cpu_us``: the worker's own CPU time (the client's side of the item's cost),
  and ``others_cores``: the cores the rest of the machine used meanwhile, on average (how
  contended the case's throughput was);
- ``items_per_s`` of the drain, for the ratio of the realistic table to the narrow one
  (the issue's target: ≥ 0.8);
- with history on, ``history_statements``: the worker's statements that inserted into
  ``curate_attempts`` (one per outcome write; a batched completion records many items).

One JSON line per case on stdout. Needs root (the dedicated server runs as ``postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "runners")]

import cpu_time  # noqa: E402
import curate_runner  # noqa: E402
import curate_soak  # noqa: E402
from sqlalchemy import MetaData, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine  # noqa: E402
from tests.dedicated_server import dedicated_server  # noqa: E402

import curate  # noqa: E402
from curate.db.own_tables import create_own_tables  # noqa: E402
from curate.sql.history import TABLE as ATTEMPTS  # noqa: E402

WORKER_ROLE = "curate_worker"
PGQUEUER_COST = ROOT / "bench" / "runners" / "pgqueuer_cost.py"


@dataclass(frozen=True)
class Case:
    """One drain to measure: which table, which mode, how big, where."""

    shape: str
    mode: str
    history: bool | None
    """curate's attempt history on or off; None for a system that has none."""
    rows: int
    items: int
    schema: str
    worker_url: str
    """The server as the counted role."""
    data_dir: Path
    """The server's, to find its processes (their CPU time)."""

    def __str__(self) -> str:
        history = "" if self.history is None else f", history {'on' if self.history else 'off'}"
        return f"{self.shape} {self.mode}{history}"


class Shape(Protocol):
    """A queue to measure: who drains it, in which modes, and how it is made and queued."""

    @property
    def system(self) -> str: ...

    @property
    def table(self) -> str:
        """The table the items are queued in (its updates and HOT updates are counted)."""

    @property
    def modes(self) -> tuple[str, ...]: ...

    @property
    def histories(self) -> tuple[bool | None, ...]:
        """The attempt history's settings measured in each mode (None: the system has none)."""

    @property
    def unfinished_sql(self) -> str:
        """How many items are left once the drain is over (0, or the case failed)."""

    async def build(self, conn: AsyncConnection, case: Case) -> None:
        """Make the tables (``conn`` is the counted role, in the case's schema)."""

    async def queue(self, conn: AsyncConnection, case: Case) -> None:
        """Queue ``case.items`` items."""

    async def drain(self, case: Case) -> float:
        """Run one worker until the queue is empty: its seconds."""

    async def verify(self, conn: AsyncConnection, case: Case) -> dict[str, Any]:
        """After the drain (``conn`` the measure's, in the case's schema, the worker's
        statements still counted): raise unless the drain wrote what the case asked for;
        figures of it for the case's line."""


async def noop(item_id: Any, session: Any) -> None:
    """Nothing: what is measured is what curate writes."""


CURATE_MODES: dict[str, dict[str, Any]] = {
    "per_item": {"concurrency": 10, "batch_size": 100},
    "batched": {"concurrency": 100, "batch_size": 1000, "outcomes": "batched"},
}
"""The drain benchmark's configurations (bench/run.py CURATE_CONFIGS)."""


@dataclass(frozen=True)
class CurateTable:
    """A table with a curate workflow's columns, drained by curate's Runtime."""

    metadata: MetaData
    table: str
    model: Any
    workflow: str
    load: str
    """SQL that fills ``{table}`` with ``{rows}`` rows, all Complete (several statements)."""
    system = "curate"
    modes = tuple(CURATE_MODES)
    histories = (False, True)

    @property
    def unfinished_sql(self) -> str:
        return (
            f"SELECT count(*) FROM {self.table}"
            f" WHERE {self.workflow}_status IN ('Queued', 'Processing')"
        )

    async def build(self, conn: AsyncConnection, case: Case) -> None:
        await conn.run_sync(self.metadata.create_all)
        await create_own_tables(conn)
        if not case.history:
            await conn.execute(text(f"DROP TABLE {ATTEMPTS}"))
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute(self.load.format(table=self.table, rows=case.rows))

    async def queue(self, conn: AsyncConnection, case: Case) -> None:
        await conn.execute(
            text(
                f"UPDATE {self.table} SET {self.workflow}_status = 'Queued' WHERE id % :every = 0"
            ),
            {"every": case.rows // case.items},
        )

    async def drain(self, case: Case) -> float:
        settings = curate.CurateSettings(
            database_url=case.worker_url,
            database_schema=case.schema,
            pool_size=110,
            worker_id="cost",
            attempt_history="all" if case.history else "off",
        )
        runtime = curate.Runtime(settings)
        options = {
            **CURATE_MODES[case.mode],
            "run_max_items": 10 * case.items,
            "run_max_seconds": 600.0,
        }
        started = time.perf_counter()
        try:
            await runtime.run(
                curate.Workflow(self.workflow, model=self.model, service=noop, **options)
            )
        finally:
            await runtime.close()
        return time.perf_counter() - started

    async def verify(self, conn: AsyncConnection, case: Case) -> dict[str, Any]:
        named = (await conn.execute(text(NAMING_HISTORY), {"role": WORKER_ROLE})).one()
        if not case.history:
            if named.calls:
                raise RuntimeError(f"{case}: {named.calls} statements named {ATTEMPTS}")
            return {}
        recorded = (await conn.execute(text(RECORDED))).one()
        if not named.inserts or not recorded.attempts == recorded.completed == case.items:
            raise RuntimeError(
                f"{case}: {recorded.attempts} attempts ({recorded.completed} completed) for"
                f" {case.items} items, by {named.inserts} statements inserting into {ATTEMPTS}"
            )
        return {"history_statements": round(float(named.inserts) / case.items, 3)}


PGQUEUER_MODES = {"default": 10, "batch 100": 100}
"""PgQueuer's batch size in the drain benchmark's configurations of it (bench/run.py)."""


@dataclass(frozen=True)
class PgQueuerTable:
    """PgQueuer's own queue table, made, filled and drained by bench/runners/pgqueuer_cost.py
    with ``python`` (an environment that has PgQueuer)."""

    python: Path
    system = "pgqueuer"
    table = "pgqueuer"
    modes = tuple(PGQUEUER_MODES)
    histories = (None,)
    unfinished_sql = "SELECT count(*) FROM pgqueuer"
    """A job leaves the queue table when its outcome is written (to pgqueuer_log)."""

    async def build(self, conn: AsyncConnection, case: Case) -> None:
        await self._run(case, "install")

    async def queue(self, conn: AsyncConnection, case: Case) -> None:
        await self._run(case, "enqueue", "--n", str(case.items))

    async def drain(self, case: Case) -> float:
        batch = str(PGQUEUER_MODES[case.mode])
        out = await self._run(case, "drain", "--n", str(case.items), "--batch-size", batch)
        return float(json.loads(out)["seconds"])

    async def verify(self, conn: AsyncConnection, case: Case) -> dict[str, Any]:
        return {}

    async def _run(self, case: Case, *args: str) -> str:
        """One command of pgqueuer_cost.py as the counted role: its stdout."""
        process = await asyncio.create_subprocess_exec(
            str(self.python),
            str(PGQUEUER_COST),
            *args,
            "--dsn",
            case.worker_url,
            "--schema",
            case.schema,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"pgqueuer_cost.py {args[0]}: {err.decode().strip()[-600:]}")
        return out.decode()


def shapes(pgqueuer_python: Path | None) -> dict[str, Shape]:
    """The tables measured: curate's narrow and realistic ones, then PgQueuer's when asked."""
    measured: dict[str, Shape] = {
        "narrow": CurateTable(
            curate_runner.Base.metadata,
            curate_runner.TABLE,
            curate_runner.BenchItem,
            "bench",
            "INSERT INTO {table} (id, bench_status) SELECT g, 'Complete'"
            " FROM generate_series(1, {rows}) AS g",
        ),
        "realistic": CurateTable(
            curate_soak.SoakBase.metadata, "pages", curate_soak.Page, "fetch", curate_soak.LOAD
        ),
    }
    if pgqueuer_python is not None:
        measured["pgqueuer"] = PgQueuerTable(pgqueuer_python)
    return measured


SNAPSHOT = """
SELECT pg_current_wal_flush_lsn()::text AS lsn, s.n_tup_upd, s.n_tup_hot_upd, d.xact_commit
FROM pg_stat_user_tables AS s, pg_stat_database AS d
WHERE s.schemaname = :schema AND s.relname = :table AND d.datname = current_database()
"""
STATEMENTS = r"""
SELECT coalesce(sum(calls) FILTER (WHERE query !~* '^(begin|commit|rollback)\M'), 0) AS calls,
       coalesce(sum(total_exec_time), 0) AS exec_ms
FROM public.pg_stat_statements WHERE userid = :role ::regrole
"""
NAMING_HISTORY = f"""
SELECT coalesce(sum(calls), 0) AS calls,
       coalesce(sum(calls) FILTER (WHERE query ILIKE '%INSERT INTO {ATTEMPTS} %'), 0) AS inserts
FROM public.pg_stat_statements WHERE userid = :role ::regrole AND query ILIKE '%{ATTEMPTS}%'
"""
RECORDED = f"""
SELECT count(*) AS attempts, count(*) FILTER (WHERE outcome = 'completed') AS completed
FROM {ATTEMPTS}
"""
LSN = "SELECT pg_current_wal_flush_lsn()::text"
WAL_BYTES = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), CAST(CAST(:start AS text) AS pg_lsn))"
)
WAL = """
SELECT "resource_manager/record_type" AS resource_manager, count, fpi_size
FROM public.pg_get_wal_stats(CAST(CAST(:start AS text) AS pg_lsn), pg_current_wal_flush_lsn())
"""


async def measure(url: str, shape: Shape, case: Case) -> dict[str, Any]:
    admin = _admin_engine(url)
    params = {"schema": case.schema, "table": shape.table}
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {case.schema} CASCADE"))
            await conn.execute(text("CHECKPOINT"))  # the case's pages all newer than it
            await conn.execute(text(f"CREATE SCHEMA {case.schema} AUTHORIZATION {WORKER_ROLE}"))
            await conn.execute(text(f"SET search_path TO {case.schema}"))
            await conn.execute(text(f"SET ROLE {WORKER_ROLE}"))
            await shape.build(conn, case)
            queued_from = await conn.scalar(text(LSN))
            await shape.queue(conn, case)
            queue_wal_bytes = await conn.scalar(text(WAL_BYTES), {"start": queued_from})
            await conn.execute(text("RESET ROLE"))
            await conn.execute(text(f"VACUUM ANALYZE {case.schema}.{shape.table}"))
            await conn.execute(text("SELECT pg_stat_force_next_flush()"))  # the queueing's
            await conn.execute(text("SELECT 1"))  # counts, flushed as this ends
            await conn.execute(text("SELECT public.pg_stat_statements_reset()"))
            await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            before = (await conn.execute(text(SNAPSHOT), params)).one()

        cpu_before = _cpu_seconds(case)
        seconds = await shape.drain(case)
        server_cpu, worker_cpu, machine = (
            after - before for after, before in zip(_cpu_seconds(case), cpu_before, strict=True)
        )

        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_stat_force_next_flush()"))
            await asyncio.sleep(0.6)  # the stats collector's flush of the worker's counts
            after = (await conn.execute(text(SNAPSHOT), params)).one()
            statements = (await conn.execute(text(STATEMENTS), {"role": WORKER_ROLE})).one()
            wal = {
                r.resource_manager: r for r in await conn.execute(text(WAL), {"start": before.lsn})
            }
            wal_bytes = await conn.scalar(text(WAL_BYTES), {"start": before.lsn})
            await conn.execute(text(f"SET search_path TO {case.schema}"))
            left = await conn.scalar(text(shape.unfinished_sql))
            if left:
                raise RuntimeError(f"{case}: {left} of {case.items} items left")
            written = await shape.verify(conn, case)
            await conn.execute(text(f"DROP SCHEMA {case.schema} CASCADE"))
    finally:
        await admin.dispose()
    items = case.items
    updates = after.n_tup_upd - before.n_tup_upd
    return {
        "measure": "item_cost",
        "system": shape.system,
        "table": case.shape,
        "mode": case.mode,
        "history": case.history,
        "rows": case.rows,
        "items": items,
        "items_per_s": round(items / seconds),
        "queue_wal_bytes": round(float(queue_wal_bytes) / items),
        "statements": round(float(statements.calls) / items, 3),
        "exec_us": round(1000 * float(statements.exec_ms) / items, 1),
        "server_cpu_us": round(1e6 * server_cpu / items, 1),
        "worker_cpu_us": round(1e6 * worker_cpu / items, 1),
        "others_cores": round(max(machine - server_cpu - worker_cpu, 0.0) / seconds, 2),
        "transactions": round((after.xact_commit - before.xact_commit) / items, 3),
        "wal_bytes": round(float(wal_bytes) / items),
        "heap_records": round(_records(wal, "Heap", "Heap2") / items, 2),
        "btree_records": round(_records(wal, "Btree") / items, 2),
        "fpi_bytes": round(sum(int(r.fpi_size) for r in wal.values()) / items),
        "updates": round(updates / items, 2),
        "hot_share": round((after.n_tup_hot_upd - before.n_tup_hot_upd) / max(updates, 1), 3),
        **written,
    }


def _cpu_seconds(case: Case) -> tuple[float, float, float]:
    """CPU seconds so far of the server, of the worker (this process's: curate's runtime
    runs in it; PgQueuer's drain is a child, counted once it has exited) and of the whole
    machine."""
    server = cpu_time.server_seconds(case.data_dir)
    return server, cpu_time.own_seconds(), cpu_time.machine_busy_seconds()


def _admin_engine(url: str) -> Any:
    """The measure's own connections, as the server's superuser, outside transactions."""
    asyncpg_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    return create_async_engine(asyncpg_url, isolation_level="AUTOCOMMIT")


def _records(wal: dict[str, Any], *managers: str) -> int:
    return sum(int(wal[m].count) for m in managers if m in wal)


async def main(args: argparse.Namespace) -> None:
    conf = (
        "shared_preload_libraries = 'pg_stat_statements'",
        "pg_stat_statements.track_utility = on",
        "max_connections = 200",
        "autovacuum = off",  # no vacuum's WAL in a case's figures
        # No checkpoint but the one each case starts with: a full-page image in a drain's WAL
        # would be there by chance (the first write of a page after a checkpoint).
        "checkpoint_timeout = '1h'",
        "max_wal_size = '16GB'",
    )
    with dedicated_server(conf=conf) as server:
        url = server.url()
        admin = _admin_engine(url)
        async with admin.connect() as conn:
            for extension in ("pg_stat_statements", "pg_walinspect"):
                await conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {extension}"))
            await conn.execute(text(f"CREATE ROLE {WORKER_ROLE} LOGIN"))
            await conn.execute(text(f"GRANT CREATE ON DATABASE postgres TO {WORKER_ROLE}"))
        await admin.dispose()
        worker_url = url.replace("postgresql://postgres@", f"postgresql://{WORKER_ROLE}@")
        for name, shape in shapes(args.pgqueuer_python).items():
            for mode, history in itertools.product(shape.modes, shape.histories):
                schema = f"cost_{name}_{mode.replace(' ', '_')}" + ("_history" if history else "")
                case = Case(
                    name, mode, history, args.rows, args.items, schema, worker_url, server.data_dir
                )
                print(json.dumps(await measure(url, shape, case)), flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows in each curate table")
    parser.add_argument("--items", type=int, default=10_000, help="rows queued and drained")
    parser.add_argument(
        "--pgqueuer-python",
        type=Path,
        help="also PgQueuer's queue table, with this Python (one that has pgqueuer)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
