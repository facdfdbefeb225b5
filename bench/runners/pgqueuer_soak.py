"""PgQueuer's side of the soak (bench/soak.py; bench/.venv-peers): the same two stages as jobs.

PgQueuer's jobs are rows of its own table, not of the app's: a job's payload is the id of
the page it is about (a reference, a few bytes), so no pages table is loaded. The producer
enqueues one ``fetch`` job per page id in one statement per tick; the fetch entrypoint
enqueues that page's ``parse`` job (a statement of its own: PgQueuer writes its outcomes
apart from the handler, buffered); neither does other work. The measured tables are its
queue table ``pgqueuer`` (the targets' figures) and its log ``pgqueuer_log``. The claim
time is its ``Queries.dequeue`` as its QueueManager awaits it, on the worker's one
connection (which the handlers' enqueues share, as in PgQueuer's own examples).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pgqueuer_runner
import protocol
from pgqueuer import Job, QueueManager
from pgqueuer.queries import Queries


class PgQueuerSoak:
    name = "pgqueuer"
    tables = ("pgqueuer", "pgqueuer_log")
    backlog_sql = "SELECT count(*) FROM pgqueuer WHERE status = 'queued'"
    """Jobs waiting, of either stage."""

    def version(self) -> str:
        return pgqueuer_runner.PgQueuer().version()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pgqueuer_runner.PgQueuer().add_arguments(parser)  # --batch-size (its default, 10)

    def settings(self, ctx: protocol.Context) -> dict[str, Any]:
        return {
            "entrypoints": "fetch, then parse (enqueued by fetch's handler)",
            "batch_size": ctx.args.batch_size,
            "payload": "the page id (a reference: PgQueuer's job is not the domain row)",
            "connection": "one asyncpg connection per worker",
            "listen_notify": True,
            "producer": "Queries.enqueue of a batch, one statement per tick",
            "worker": "QueueManager.run",
        }

    async def setup(self, ctx: protocol.Context, conn: asyncpg.Connection) -> dict[str, Any]:
        await pgqueuer_runner.PgQueuer().setup(ctx, conn)
        return {}

    @contextlib.asynccontextmanager
    async def producer(self, ctx: protocol.Context) -> AsyncIterator[Any]:
        pgqueuer_runner._configure(ctx)
        conn = await asyncpg.connect(ctx.dsn)
        queries = Queries.from_asyncpg_connection(conn)

        async def enqueue(ids: list[int]) -> None:
            payloads: list[bytes | None] = [str(i).encode() for i in ids]
            await queries.enqueue(["fetch"] * len(ids), payloads, [0] * len(ids))

        try:
            yield enqueue
        finally:
            await conn.close()

    async def work(self, ctx: protocol.Context, ready: protocol.Ready) -> None:
        pgqueuer_runner._configure(ctx)
        conn = await asyncpg.connect(ctx.dsn)
        manager = QueueManager(Queries.from_asyncpg_connection(conn))
        tally = protocol.Tally()
        dequeue = manager.queries.dequeue

        async def timed_dequeue(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            jobs = await dequeue(*args, **kwargs)
            tally.claimed("", len(jobs), time.perf_counter() - started)
            return jobs

        manager.queries.dequeue = timed_dequeue  # type: ignore[method-assign]

        @manager.entrypoint("fetch")
        async def fetch(job: Job) -> None:
            await manager.queries.enqueue("parse", job.payload)
            tally.count("fetched")

        @manager.entrypoint("parse")
        async def parse(job: Job) -> None:
            tally.count("done")

        await ready()
        reporter = asyncio.create_task(tally.report_every(protocol.REPORT_SECONDS))
        stop = protocol.stop_on_sigterm()
        stopper = asyncio.create_task(stop.wait())
        stopper.add_done_callback(lambda _: manager.shutdown.set())
        try:
            await manager.run(batch_size=ctx.args.batch_size)
        finally:
            reporter.cancel()


SIDE = PgQueuerSoak()
