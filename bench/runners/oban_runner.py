"""Oban for Python under the benchmark protocol (bench/.venv-oban, Python 3.12): see protocol.py.

Its tables are installed with ``oban.schema.install_sql(prefix)`` (the documented SQL for
migration frameworks) in the run's schema, which is also Oban's ``prefix``; the bulk load
is one ``INSERT … SELECT generate_series`` into ``oban_jobs`` (``Oban.enqueue_many`` inserts
row by row); latency jobs go through ``Oban.enqueue``. Each worker is an ``Oban`` instance
with one queue of limit 10 (``--limit``; 100 is its best configuration) on
``Oban.create_pool``'s default pool. Oban always LISTENs: ``--notify off`` runs it as it is.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import protocol
from oban import Job, Oban, worker
from oban.schema import install_sql

QUEUE = "default"
_pickup = False


@worker(queue=QUEUE)
class Noop:
    """The job: nothing (drain), or tell the parent when it started (pick-up)."""

    async def process(self, job: Job) -> None:
        if _pickup:
            protocol.report_start(int(job.args["seq"]))


WORKER_NAME = f"{Noop.__module__}.{Noop.__qualname__}"
UNFINISHED = "state IN ('available', 'scheduled', 'executing', 'retryable')"


class ObanSystem(protocol.System):
    name = "oban"
    distribution = "oban"
    any_unfinished_sql = f"SELECT EXISTS (SELECT 1 FROM oban_jobs WHERE {UNFINISHED})"
    count_unfinished_sql = f"SELECT count(*) FROM oban_jobs WHERE {UNFINISHED}"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--limit", type=int, default=10, help="queue limit (jobs in flight)")

    def settings(self, ctx: protocol.Context) -> dict[str, Any]:
        return {
            "queue_limit": ctx.args.limit,
            "outcomes": "acked in batches by Oban's producer",
            "pool": "Oban.create_pool defaults",
            "listen_notify": True,
            "stager_interval_seconds": 1.0,
            "note": "Oban always LISTENs; --notify off runs it unchanged",
            "worker": "Oban(queues={'default': limit}).start()",
        }

    async def setup(self, ctx: protocol.Context, conn: asyncpg.Connection) -> None:
        await conn.execute(install_sql(ctx.schema))

    async def enqueue_bulk(self, ctx: protocol.Context, conn: asyncpg.Connection, n: int) -> None:
        await conn.execute(
            "INSERT INTO oban_jobs (worker, queue, args)"
            " SELECT $1, $2, jsonb_build_object('seq', g) FROM generate_series(1, $3::int) AS g",
            WORKER_NAME,
            QUEUE,
            n,
        )

    @contextlib.asynccontextmanager
    async def producer(
        self, ctx: protocol.Context, conn: asyncpg.Connection
    ) -> AsyncIterator[protocol.Enqueue]:
        pool = await Oban.create_pool(ctx.dsn)
        try:
            async with Oban(pool=pool, prefix=ctx.schema, name="producer") as oban:

                async def enqueue(seq: int) -> None:
                    await oban.enqueue(Job(WORKER_NAME, queue=QUEUE, args={"seq": seq}))

                yield enqueue
        finally:
            await pool.close()

    async def work(self, ctx: protocol.Context, ready: protocol.Ready) -> None:
        global _pickup
        _pickup = ctx.pickup
        pool = await Oban.create_pool(ctx.dsn)
        try:
            async with pool.connection() as connection:
                await connection.execute("SELECT 1")
            oban = Oban(pool=pool, prefix=ctx.schema, queues={QUEUE: ctx.args.limit})
            await ready()
            stop = protocol.stop_on_sigterm()
            await oban.start()
            await stop.wait()
            await oban.stop()
        finally:
            await pool.close()


if __name__ == "__main__":
    protocol.main(ObanSystem())
