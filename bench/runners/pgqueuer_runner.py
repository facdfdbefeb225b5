"""PgQueuer under the benchmark protocol (bench/.venv-peers): see protocol.py.

Its tables are installed with ``Queries.install()`` in the run's schema (``PGQUEUER_SCHEMA``,
plus a NOTIFY channel of the run's own), jobs are queued with one batch ``enqueue``, and
each worker is a ``QueueManager`` on one asyncpg connection, as in PgQueuer's examples,
run with ``batch_size=10`` (its default; ``--batch-size 100`` is its best configuration).
PgQueuer always LISTENs: ``--notify off`` runs it as it is and says so in the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import protocol
from pgqueuer import Job, QueueManager
from pgqueuer.domain.settings import db_settings
from pgqueuer.queries import Queries

ENTRYPOINT = "noop"


def _configure(ctx: protocol.Context) -> None:
    """Point PgQueuer at the run's schema and channel (read from the environment)."""
    os.environ["PGQUEUER_SCHEMA"] = ctx.schema
    os.environ["PGQUEUER_CHANNEL"] = f"ch_{ctx.schema}"
    db_settings.cache_clear()


class PgQueuer(protocol.System):
    name = "pgqueuer"
    distribution = "pgqueuer"
    any_unfinished_sql = "SELECT EXISTS (SELECT 1 FROM pgqueuer)"
    count_unfinished_sql = "SELECT count(*) FROM pgqueuer"
    """A job leaves the queue table when its outcome is written (to pgqueuer_log)."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=10, help="jobs per dequeue")

    def settings(self, ctx: protocol.Context) -> dict[str, Any]:
        return {
            "batch_size": ctx.args.batch_size,
            "max_concurrent_tasks": None,
            "outcomes": "buffered by PgQueuer (JobStatusLogBuffer, up to batch_size at once)",
            "connection": "one asyncpg connection per worker",
            "listen_notify": True,
            "dequeue_timeout_seconds": 30,
            "note": "PgQueuer always LISTENs; --notify off runs it unchanged",
            "worker": "QueueManager.run",
        }

    async def setup(self, ctx: protocol.Context, conn: asyncpg.Connection) -> None:
        _configure(ctx)
        await Queries.from_asyncpg_connection(conn).install()

    async def enqueue_bulk(self, ctx: protocol.Context, conn: asyncpg.Connection, n: int) -> None:
        payloads: list[bytes | None] = [str(seq).encode() for seq in range(1, n + 1)]
        await Queries.from_asyncpg_connection(conn).enqueue([ENTRYPOINT] * n, payloads, [0] * n)

    @contextlib.asynccontextmanager
    async def producer(
        self, ctx: protocol.Context, conn: asyncpg.Connection
    ) -> AsyncIterator[protocol.Enqueue]:
        queries = Queries.from_asyncpg_connection(conn)

        async def enqueue(seq: int) -> None:
            await queries.enqueue(ENTRYPOINT, str(seq).encode())

        yield enqueue

    async def work(self, ctx: protocol.Context, ready: protocol.Ready) -> None:
        _configure(ctx)
        conn = await asyncpg.connect(ctx.dsn)
        manager = QueueManager(Queries.from_asyncpg_connection(conn))
        pickup = ctx.pickup

        @manager.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            if pickup and job.payload is not None:
                protocol.report_start(int(job.payload))

        await ready()
        stop = protocol.stop_on_sigterm()
        stopper = asyncio.create_task(stop.wait())
        stopper.add_done_callback(lambda _: manager.shutdown.set())
        await manager.run(batch_size=ctx.args.batch_size)


if __name__ == "__main__":
    protocol.main(PgQueuer())
