"""curate under the benchmark protocol (main venv): see protocol.py for the command line.

A table with ``workflow_mixin("bench")`` columns, the queued partial index and the NOTIFY
trigger (`curate.migrations`), a no-op service; each worker is `curate.worker.run_worker`.
Alembic and `curate.migrations` are imported by the parent's set-up only, so a worker's
memory is what a curate worker loads.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

import asyncpg
import protocol
from sqlalchemy import Integer, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import curate
from curate import CurateSettings, Workflow, workflow_mixin
from curate.worker import run_worker

TABLE = "bench_items"
INTERVAL_SECONDS = 1.0
"""Polling interval: the fallback with NOTIFY on, the only way to pick up with it off."""
RUN_MAX_ITEMS = 1_000_000_000
"""No per-run item budget: a run drains the queue instead of pausing until the next poll."""


class Base(DeclarativeBase):
    pass


class BenchItem(workflow_mixin("bench"), Base):  # type: ignore[misc]
    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


async def noop(item_id: int, session: AsyncSession) -> None:
    """The drain service: nothing, so what is measured is curate's own cost per item."""


async def report(item_id: int, session: AsyncSession) -> None:
    """The pick-up service: tell the parent when it started."""
    protocol.report_start(item_id)


def _create_table(connection: Connection) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from curate.migrations import create_curate_tables, create_notify_trigger

    Base.metadata.create_all(connection)  # with the queued index, which the mixin declares
    with Operations.context(MigrationContext.configure(connection)):
        create_notify_trigger(TABLE, "bench")
        create_curate_tables()


class Curate(protocol.System):
    name = "curate"
    distribution = "curate-workflows"
    modes = ("per_item", "batched")
    any_unfinished_sql = (
        f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE bench_status = 'Queued')"
        f" OR EXISTS (SELECT 1 FROM {TABLE} WHERE bench_status = 'Processing')"
    )
    count_unfinished_sql = (
        f"SELECT count(*) FROM {TABLE} WHERE bench_status IN ('Queued', 'Processing')"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--concurrency", type=int, default=10, help="items in flight")
        parser.add_argument("--batch-size", type=int, default=100, help="items per claim")

    def version(self) -> str:
        return curate.__version__

    def _workflow_options(self, ctx: protocol.Context) -> dict[str, Any]:
        options: dict[str, Any] = {
            "batch_size": ctx.args.batch_size,
            "concurrency": ctx.args.concurrency,
            "interval_seconds": INTERVAL_SECONDS,
            "run_max_items": RUN_MAX_ITEMS,
            "run_max_seconds": ctx.args.max_seconds,
        }
        if ctx.args.mode == "batched":
            options["outcomes"] = "batched"  # new in curate: a TypeError before it exists
        return options

    def settings(self, ctx: protocol.Context) -> dict[str, Any]:
        return {
            **self._workflow_options(ctx),
            "outcomes": ctx.args.mode,
            "pool_size": ctx.args.concurrency + 2,
            "listen_notify": ctx.notify,
            "worker": "curate.worker.run_worker",
        }

    async def setup(self, ctx: protocol.Context, conn: asyncpg.Connection) -> None:
        engine = create_async_engine(
            _sqlalchemy_url(ctx.dsn),
            connect_args={"server_settings": {"search_path": ctx.schema}},
        )
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_create_table)
        finally:
            await engine.dispose()

    async def enqueue_bulk(self, ctx: protocol.Context, conn: asyncpg.Connection, n: int) -> None:
        await conn.execute(
            f"INSERT INTO {TABLE} (id, bench_status)"
            " SELECT g, 'Queued' FROM generate_series(1, $1::int) AS g",
            n,
        )

    def producer(
        self, ctx: protocol.Context, conn: asyncpg.Connection
    ) -> contextlib.AbstractAsyncContextManager[protocol.Enqueue]:
        return protocol.sql_producer(
            conn, f"INSERT INTO {TABLE} (id, bench_status) VALUES ($1, 'Queued')"
        )

    async def work(self, ctx: protocol.Context, ready: protocol.Ready) -> None:
        runtime = curate.configure(
            CurateSettings(
                database_url=ctx.dsn,
                database_schema=ctx.schema,
                pool_size=ctx.args.concurrency + 2,
                listen_notify=ctx.notify,
            )
        )
        flow = Workflow(
            "bench",
            model=BenchItem,
            service=report if ctx.pickup else noop,
            **self._workflow_options(ctx),
        )
        runtime.register(flow)  # settings and columns are checked here, before `ready`
        engine = await runtime.database.engine()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await ready()
        await run_worker([flow], runtime)


def _sqlalchemy_url(dsn: str) -> str:
    return "postgresql+asyncpg://" + dsn.split("://", 1)[1]


if __name__ == "__main__":
    protocol.main(Curate())
