"""What one item costs the database server: statements, transactions, WAL and index entries.

    .venv/bin/python bench/item_cost.py [--rows 50000] [--items 10000]

A status on the domain table means every claim and every outcome is an UPDATE of the
app's own row; when the status is indexed (the queued partial index's predicate is), that
update is not HOT, so it writes a new entry into every index of the table. This measures
it, for a narrow table (the drain benchmark's: a primary key and the workflow's columns)
and a realistic one (the soak's ``pages``: a ~2 KB body, four secondary indexes, two
workflows), in both of curate's outcome modes, on the same server in the same run.

Each case: a fresh schema on a PostgreSQL of the measure's own (tests/dedicated_server.py,
as root, with ``pg_stat_statements`` loaded, so no other client's statements count), rows
loaded Complete, ``items`` of them queued, VACUUM ANALYZE, then one worker's drain of the
queue with a no-op service (as the `curate` role, the only role counted). Per item:

- ``statements``: pg_stat_statements' calls of that role, BEGIN and COMMIT left out; and
  ``transactions`` committed in the database (pg_stat_database; the measure's own few
  are noise at this count);
- ``wal_bytes``, and the WAL records of the table's heap and of its B-trees (each B-tree
  record an index entry written, or a page split), from pg_walinspect over the drain;
- ``hot_share``: HOT updates ÷ updates of the table (pg_stat_user_tables);
- ``items_per_s`` of the drain, for the ratio of the realistic table to the narrow one
  (the issue's target: ≥ 0.8).

One JSON line per case on stdout. Needs root (the dedicated server runs as ``postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "runners")]

import curate_runner  # noqa: E402
import curate_soak  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine  # noqa: E402
from tests.dedicated_server import dedicated_server  # noqa: E402

import curate  # noqa: E402
from curate.db.own_tables import create_own_tables  # noqa: E402

WORKER_ROLE = "curate_worker"
MODES = {
    "per_item": {"concurrency": 10, "batch_size": 100},
    "batched": {"concurrency": 100, "batch_size": 1000},
}
"""The drain benchmark's configurations (bench/run.py CURATE_CONFIGS)."""


async def noop(item_id: Any, session: Any) -> None:
    """Nothing: what is measured is what curate writes."""


def narrow_workflow(options: dict[str, Any]) -> curate.Workflow:
    return curate.Workflow("bench", model=curate_runner.BenchItem, service=noop, **options)


def wide_workflow(options: dict[str, Any]) -> curate.Workflow:
    return curate.Workflow("fetch", model=curate_soak.Page, service=noop, **options)


TABLES: dict[str, tuple[Any, str, Callable[[dict[str, Any]], curate.Workflow], str]] = {
    "narrow": (
        curate_runner.Base.metadata,
        curate_runner.TABLE,
        narrow_workflow,
        "INSERT INTO {table} (id, bench_status) SELECT g, 'Complete'"
        " FROM generate_series(1, {rows}) AS g",
    ),
    "realistic": (
        curate_soak.SoakBase.metadata,
        "pages",
        wide_workflow,
        curate_soak.LOAD,
    ),
}
STATUS_COLUMN = {"narrow": "bench_status", "realistic": "fetch_status"}


async def build(conn: AsyncConnection, shape: str, rows: int, items: int) -> None:
    metadata, table, _, load = TABLES[shape]
    await conn.run_sync(metadata.create_all)
    await create_own_tables(conn)
    raw = await conn.get_raw_connection()
    await raw.driver_connection.execute(load.format(table=table, rows=rows))  # several stmts
    status = STATUS_COLUMN[shape]
    await conn.execute(
        text(f"UPDATE {table} SET {status} = 'Queued' WHERE id % :every = 0"),
        {"every": rows // items},
    )


SNAPSHOT = """
SELECT pg_current_wal_flush_lsn()::text AS lsn, s.n_tup_upd, s.n_tup_hot_upd, d.xact_commit
FROM pg_stat_user_tables AS s, pg_stat_database AS d
WHERE s.schemaname = :schema AND s.relname = :table AND d.datname = current_database()
"""
STATEMENTS = r"""
SELECT coalesce(sum(calls) FILTER (WHERE query !~* '^(begin|commit|rollback)\M'), 0)
FROM public.pg_stat_statements WHERE userid = :role ::regrole
"""
WAL_BYTES = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), CAST(CAST(:start AS text) AS pg_lsn))"
)
WAL_BYTES = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), CAST(CAST(:start AS text) AS pg_lsn))"
)
WAL = """
SELECT "resource_manager/record_type" AS resource_manager, count
FROM public.pg_get_wal_stats(CAST(CAST(:start AS text) AS pg_lsn), pg_current_wal_flush_lsn())
"""


async def measure(url: str, shape: str, mode: str, rows: int, items: int) -> dict[str, Any]:
    schema = f"cost_{shape}_{mode}"
    _, table, make_workflow, _ = TABLES[shape]
    admin = _admin_engine(url)
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {schema} AUTHORIZATION {WORKER_ROLE}"))
            await conn.execute(text(f"SET search_path TO {schema}"))
            await conn.execute(text(f"SET ROLE {WORKER_ROLE}"))
            await build(conn, shape, rows, items)
            await conn.execute(text("RESET ROLE"))
            await conn.execute(text(f"VACUUM ANALYZE {schema}.{table}"))
            await conn.execute(text("SELECT pg_stat_force_next_flush()"))  # the queueing's
            await conn.execute(text("SELECT 1"))  # counts, flushed as this ends
            await conn.execute(text("SELECT public.pg_stat_statements_reset()"))
            await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            params = {"schema": schema, "table": table}
            before = (await conn.execute(text(SNAPSHOT), params)).one()

        worker_url = url.replace("postgresql://postgres@", f"postgresql://{WORKER_ROLE}@")
        settings = curate.CurateSettings(
            database_url=worker_url, database_schema=schema, pool_size=110, worker_id="cost"
        )
        runtime = curate.Runtime(settings)
        options = {**MODES[mode], "run_max_items": 10 * items, "run_max_seconds": 600.0}
        if mode == "batched":
            options["outcomes"] = "batched"
        started = time.perf_counter()
        try:
            result = await runtime.run(make_workflow(options))
        finally:
            await runtime.close()
        seconds = time.perf_counter() - started
        assert result.completed == items, result

        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_stat_force_next_flush()"))
            await asyncio.sleep(0.6)  # the stats collector's flush of the worker's counts
            after = (await conn.execute(text(SNAPSHOT), params)).one()
            statements = await conn.scalar(text(STATEMENTS), {"role": WORKER_ROLE})
            wal = {
                r.resource_manager: r for r in await conn.execute(text(WAL), {"start": before.lsn})
            }
            wal_bytes = await conn.scalar(
                text(WAL_BYTES),
                {"start": before.lsn},
            )
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        await admin.dispose()
    updates = after.n_tup_upd - before.n_tup_upd
    return {
        "measure": "item_cost",
        "table": shape,
        "mode": mode,
        "rows": rows,
        "items": items,
        "items_per_s": round(items / seconds),
        "statements": round(float(statements) / items, 2),
        "transactions": round((after.xact_commit - before.xact_commit) / items, 2),
        "wal_bytes": round(float(wal_bytes) / items),
        "heap_records": round(_records(wal, "Heap", "Heap2") / items, 2),
        "btree_records": round(_records(wal, "Btree") / items, 2),
        "updates": round(updates / items, 2),
        "hot_share": round((after.n_tup_hot_upd - before.n_tup_hot_upd) / max(updates, 1), 3),
    }


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
        for shape in TABLES:
            for mode in MODES:
                line = await measure(url, shape, mode, args.rows, args.items)
                print(json.dumps(line), flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows in each table")
    parser.add_argument("--items", type=int, default=10_000, help="rows queued and drained")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
