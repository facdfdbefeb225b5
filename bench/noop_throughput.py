"""Throughput of curate's loop: N queued no-op items, processed by one worker.

    .venv/bin/python bench/noop_throughput.py --items 10000 --concurrency 10

Uses CURATE_DATABASE_URL (default: the local server on 127.0.0.1:5432, database test)
and a throw-away schema. Prints items/s and the process's CPU time per item (user +
system), which other load on the machine disturbs far less than items/s; it asserts
nothing (figures are machine-bound).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from typing import Any

from sqlalchemy import Integer, insert, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import curate
from curate import CurateSettings, Workflow, workflow_mixin
from curate.db.own_tables import create_own_tables


class Base(DeclarativeBase):
    pass


class BenchItem(workflow_mixin("bench"), Base):
    __tablename__ = "bench_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


async def noop(item_id: int, session: AsyncSession) -> None:
    """The service does nothing: what is measured is curate's own cost per item."""


async def main(items: int, concurrency: int, batch_size: int, url: str, outcomes: Any) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    runtime = curate.configure(
        CurateSettings(database_url=url, database_schema=schema, pool_size=concurrency + 2)
    )
    engine = await runtime.database.engine()
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.execute(text(f"SET search_path TO {schema}"))
        await conn.run_sync(Base.metadata.create_all)
        await create_own_tables(conn)  # as a migrated app has them
        await conn.execute(
            text(
                f"CREATE INDEX ix_bench_queued ON {schema}.bench_items (bench_priority DESC, id)"
                " WHERE bench_status = 'Queued'"
            )
        )
        await conn.execute(
            insert(BenchItem), [{"id": i, "bench_status": "Queued"} for i in range(items)]
        )
    flow = Workflow(
        "bench",
        model=BenchItem,
        service=noop,
        batch_size=batch_size,
        concurrency=concurrency,
        outcomes=outcomes,
        run_max_items=items,
        run_max_seconds=3600,
    )
    try:
        cpu = _cpu_seconds()
        started = time.perf_counter()
        result = await flow.run()
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await runtime.database.dispose()
    print(
        f"{result.completed} items in {elapsed:.2f} s = {result.completed / elapsed:,.0f} items/s"
        f" (concurrency {concurrency}, batch {batch_size}, outcomes {outcomes});"
        f" CPU {cpu / max(result.completed, 1) * 1e6:.0f} µs per item"
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--outcomes", choices=("per_item", "batched"), default="per_item")
    parser.add_argument(
        "--url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test", help="database URL"
    )
    args = parser.parse_args()
    asyncio.run(main(args.items, args.concurrency, args.batch_size, args.url, args.outcomes))
