"""The hand-written status loop under the benchmark protocol (main or peers venv): protocol.py.

What people write without a library: SQLAlchemy async, an APScheduler ``AsyncIOScheduler``
interval job (1 s) that selects one batch of queued ids (``ORDER BY id LIMIT 10``, no
``SKIP LOCKED``), marks them Processing, then handles each item in its own session and
marks it Complete. No index on the status, no NOTIFY. Several workers select the same
rows and process them twice: each completion adds 1 to ``runs``, and the drain reports
the ``duplicates``.
"""

from __future__ import annotations

import argparse
import contextlib
from importlib.metadata import version
from typing import Any

import asyncpg
import protocol
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Integer, String, select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

INTERVAL_SECONDS = 1.0
BATCH_SIZE = 10
TABLE = "naive_items"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None]
    runs: Mapped[int] = mapped_column(Integer, default=0)


class Naive(protocol.System):
    name = "naive"
    distribution = "sqlalchemy"
    any_unfinished_sql = (
        f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE status IN ('Queued', 'Processing'))"
    )
    count_unfinished_sql = f"SELECT count(*) FROM {TABLE} WHERE status IN ('Queued', 'Processing')"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="rows per tick")

    def version(self) -> str:
        """No package of its own: the versions of what it is built from."""
        return f"sqlalchemy {version('sqlalchemy')}, apscheduler {version('apscheduler')}"

    def settings(self, ctx: protocol.Context) -> dict[str, Any]:
        return {
            "interval_seconds": INTERVAL_SECONDS,
            "batch_size": ctx.args.batch_size,
            "claim": "SELECT … ORDER BY id LIMIT n, then UPDATE to Processing (no SKIP LOCKED)",
            "per_item": "one AsyncSession and ORM update() per item, sequential",
            "listen_notify": False,
            "note": "polls every second whatever --notify says",
        }

    async def setup(self, ctx: protocol.Context, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, status varchar(20) NOT NULL,"
            " error text, runs integer NOT NULL DEFAULT 0)"
        )

    async def enqueue_bulk(self, ctx: protocol.Context, conn: asyncpg.Connection, n: int) -> None:
        await conn.execute(
            f"INSERT INTO {TABLE} (id, status)"
            " SELECT g, 'Queued' FROM generate_series(1, $1::int) AS g",
            n,
        )

    async def drain_extras(self, ctx: protocol.Context, conn: asyncpg.Connection) -> dict[str, Any]:
        duplicates = await conn.fetchval(
            f"SELECT coalesce(sum(runs - 1), 0) FROM {TABLE} WHERE runs > 1"
        )
        return {"duplicates": int(duplicates)}

    def producer(
        self, ctx: protocol.Context, conn: asyncpg.Connection
    ) -> contextlib.AbstractAsyncContextManager[protocol.Enqueue]:
        return protocol.sql_producer(
            conn, f"INSERT INTO {TABLE} (id, status) VALUES ($1, 'Queued')"
        )

    async def work(self, ctx: protocol.Context, ready: protocol.Ready) -> None:
        engine = create_async_engine(
            "postgresql+asyncpg://" + ctx.dsn.split("://", 1)[1],
            connect_args={"server_settings": {"search_path": ctx.schema}},
        )
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        pickup = ctx.pickup
        batch_size = ctx.args.batch_size

        async def process_single_item(item_id: int) -> None:
            if pickup:
                protocol.report_start(item_id)

        async def process_pending_items() -> None:
            async with sessions() as session:
                ids = list(
                    await session.scalars(
                        select(Item.id)
                        .where(Item.status == "Queued")
                        .order_by(Item.id)
                        .limit(batch_size)
                    )
                )
                if not ids:
                    return
                await session.execute(
                    update(Item).where(Item.id.in_(ids)).values(status="Processing")
                )
                await session.commit()
            for item_id in ids:
                async with sessions() as session:
                    try:
                        await process_single_item(item_id)
                        values: dict[str, Any] = {"status": "Complete", "runs": Item.runs + 1}
                    except Exception as exc:
                        values = {"status": "Error", "error": str(exc)}
                    await session.execute(update(Item).where(Item.id == item_id).values(values))
                    await session.commit()

        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await ready()
        stop = protocol.stop_on_sigterm()
        scheduler = AsyncIOScheduler()
        scheduler.add_job(process_pending_items, "interval", seconds=INTERVAL_SECONDS)
        scheduler.start()
        await stop.wait()
        scheduler.shutdown(wait=False)
        await engine.dispose()


if __name__ == "__main__":
    protocol.main(Naive())
