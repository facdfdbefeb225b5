"""Pick-up latency: from the commit that queues a row to its service starting.

    .venv/bin/python bench/pickup_latency.py --rows 40 --interval 1.0

Runs the same workload twice, with LISTEN/NOTIFY on and off (polling every --interval
seconds), against CURATE_DATABASE_URL (default: the local server, database test) in a
throw-away schema. Prints p50/p95 in milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Integer, insert, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import curate
from curate import CurateSettings, ProcessingStatus, Workflow, scheduling
from curate.db.own_tables import create_own_tables
from curate.migrations import create_notify_trigger


class Base(DeclarativeBase):
    pass


class PickupItem(curate.workflow_mixin("pickup"), Base):  # type: ignore[misc]
    __tablename__ = "pickup_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


def add_trigger(connection: Connection) -> None:
    with Operations.context(MigrationContext.configure(connection)):
        create_notify_trigger("pickup_items", "pickup")


async def measure(url: str, rows: int, interval: float, listen: bool) -> list[float]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    settings = CurateSettings(database_url=url, database_schema=schema, listen_notify=listen)
    runtime = curate.configure(settings)
    engine = await runtime.database.engine()
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await create_own_tables(conn)  # as a migrated app has them
        await conn.run_sync(add_trigger)
        await conn.execute(insert(PickupItem), [{"id": i} for i in range(rows)])

    started: dict[int, float] = {}
    all_started = asyncio.Event()

    async def service(item_id: int, session: AsyncSession) -> None:
        started[item_id] = time.perf_counter()
        if len(started) == rows:
            all_started.set()

    flow = Workflow("pickup", model=PickupItem, service=service, interval_seconds=interval)

    async def process_pending_pickups() -> None:
        await flow.run()

    scheduling.add_workflow_job(flow, process_pending_pickups)
    scheduling.start_scheduler()
    queued: dict[int, float] = {}
    try:
        if runtime.notifier is not None:
            await asyncio.wait_for(runtime.notifier.connected.wait(), 10)
        for item_id in range(rows):
            async with engine.begin() as conn:
                await conn.execute(
                    update(PickupItem)
                    .where(PickupItem.id == item_id)
                    .values(pickup_status=ProcessingStatus.Queued)
                )
            queued[item_id] = time.perf_counter()
            await asyncio.sleep(random.uniform(0.05, 0.25))
        await asyncio.wait_for(all_started.wait(), interval + 10)
    finally:
        await scheduling.shutdown_scheduler()
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await runtime.close()
        scheduling.reset_scheduler()
        curate.reset_runtime()
    return [(started[i] - queued[i]) * 1000 for i in range(rows) if i in started]


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(share * 100) - 1]


async def main(url: str, rows: int, interval: float) -> None:
    for listen in (True, False):
        latencies = await measure(url, rows, interval, listen)
        print(
            f"NOTIFY {'on ' if listen else 'off'} (poll every {interval:g} s):"
            f" {len(latencies)}/{rows} rows, p50 {percentile(latencies, 0.5):.1f} ms,"
            f" p95 {percentile(latencies, 0.95):.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.rows, args.interval))
