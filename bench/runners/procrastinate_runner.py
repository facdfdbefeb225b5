"""Procrastinate under the benchmark protocol (bench/.venv-peers): see protocol.py.

Its schema is applied with ``App.schema_manager.apply_schema_async()`` in the run's schema
(search_path set per connection); jobs are deferred in bulk with ``batch_defer_async``;
each worker is ``App.run_worker_async(concurrency=10)`` (``--concurrency``).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import procrastinate
import protocol
from procrastinate.types import JSONDict

POOL_EXTRA = 2
"""Connections beyond ``--concurrency`` (the LISTEN connection and the worker's own)."""
POLL_OFF_SECONDS = 1.0
"""``fetch_job_polling_interval`` with ``--notify off`` (polling only)."""

_pickup = False


async def noop(seq: int) -> None:
    """The job: nothing (drain), or tell the parent when it started (pick-up)."""
    if _pickup:
        protocol.report_start(seq)


def _app(ctx: protocol.Context) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(
        conninfo=ctx.dsn,
        kwargs={"options": f"-c search_path={ctx.schema}"},
        max_size=ctx.args.concurrency + POOL_EXTRA,
    )
    app = procrastinate.App(connector=connector)
    app.task(name="noop")(noop)
    return app


class Procrastinate(protocol.System):
    name = "procrastinate"
    distribution = "procrastinate"
    any_unfinished_sql = (
        "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
    )
    count_unfinished_sql = (
        "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--concurrency", type=int, default=10, help="jobs in flight")

    def _worker_options(self, ctx: protocol.Context) -> dict[str, Any]:
        options: dict[str, Any] = {"concurrency": ctx.args.concurrency, "wait": True}
        if not ctx.notify:
            options.update(listen_notify=False, fetch_job_polling_interval=POLL_OFF_SECONDS)
        return options

    def settings(self, ctx: protocol.Context) -> dict[str, Any]:
        return {
            **self._worker_options(ctx),
            "listen_notify": ctx.notify,
            "pool_max_size": ctx.args.concurrency + POOL_EXTRA,
            "delete_jobs": "never (default)",
            "worker": "App.run_worker_async",
        }

    async def setup(self, ctx: protocol.Context, conn: asyncpg.Connection) -> None:
        async with _app(ctx).open_async() as app:
            await app.schema_manager.apply_schema_async()

    async def enqueue_bulk(self, ctx: protocol.Context, conn: asyncpg.Connection, n: int) -> None:
        async with _app(ctx).open_async() as app:
            task = app.tasks["noop"]
            jobs: list[JSONDict] = [{"seq": seq} for seq in range(1, n + 1)]
            await task.batch_defer_async(*jobs)

    @contextlib.asynccontextmanager
    async def producer(
        self, ctx: protocol.Context, conn: asyncpg.Connection
    ) -> AsyncIterator[protocol.Enqueue]:
        async with _app(ctx).open_async() as app:
            task = app.tasks["noop"]

            async def enqueue(seq: int) -> None:
                await task.defer_async(seq=seq)

            yield enqueue

    async def work(self, ctx: protocol.Context, ready: protocol.Ready) -> None:
        global _pickup
        _pickup = ctx.pickup
        async with _app(ctx).open_async() as app:
            if not await app.check_connection_async():
                raise RuntimeError("procrastinate: its tables are missing")
            await ready()
            await app.run_worker_async(**self._worker_options(ctx))


if __name__ == "__main__":
    protocol.main(Procrastinate())
