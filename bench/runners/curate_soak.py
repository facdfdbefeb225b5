"""curate's side of the soak (bench/soak.py; main venv): the pages table and its two stages.

``pages`` is a table as an app has it: ``id bigint`` primary key, ``url`` (unique), ``site``,
a ~2 KB text ``body``, ``created_at``, ``updated_at``; four secondary indexes (url, site,
created_at, updated_at); and two workflows on the same rows, ``fetch`` then ``parse``, made
with `curate.workflow_mixin` and ``create_all`` (so with the queued partial index of each).
The fetch service hands the row to parse in its own transaction (``curate.queue``), as the
demo's stages do; neither does other work, so what the table pays is what curate writes.
curate rewrites ``updated_at`` on every claim and outcome, so no update of a row is HOT:
the updated_at index (and the queued indexes' predicates) change with each.

The body is 2,048 characters of words drawn with a skew from 300 made-up ones, which
PostgreSQL compresses to ~1.35 KB and keeps inline, as it would English prose: every new
version of a row copies it. Rows load with one ``INSERT … SELECT generate_series``, all
fetched and parsed (``Complete``), then ``VACUUM (ANALYZE)``: a table that has lived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import curate_runner
import protocol
from sqlalchemy import BigInteger, DateTime, Text, func, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import curate
from curate import CurateSettings, Workflow, workflow_mixin
from curate.db.own_tables import create_own_tables
from curate.engine.hooks import ItemEvent, ItemHook
from curate.engine.outcome import Outcome
from curate.worker import run_worker

INTERVAL_SECONDS = 1.0
"""Polling interval, the fallback behind NOTIFY (the producer's queue statement notifies)."""


class SoakBase(DeclarativeBase):
    pass


class Page(workflow_mixin("fetch"), workflow_mixin("parse"), SoakBase):  # type: ignore[misc]
    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    url: Mapped[str] = mapped_column(Text, unique=True, index=True)
    site: Mapped[str] = mapped_column(Text, index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


LOAD = """
SELECT setseed(0.16);
CREATE TEMP TABLE soak_words ON COMMIT DROP AS
    SELECT array_agg(translate(substr(md5(i::text), 1, 2 + i % 8), '0123456789', 'etaoinshrd')
                     ORDER BY i) AS words
    FROM generate_series(1, 300) AS i;
CREATE TEMP TABLE soak_paragraphs ON COMMIT DROP AS
    SELECT p.p, b.body
    FROM generate_series(0, 63) AS p(p)
    CROSS JOIN LATERAL (
        SELECT string_agg(w.words[1 + floor(300 * random() ^ 2.5)::int], ' ') AS body
        FROM generate_series(1, 600), soak_words AS w WHERE p.p >= 0
    ) AS b;
INSERT INTO pages (id, url, site, body, created_at, updated_at, fetch_status, parse_status)
SELECT g, 'https://' || s.site || '/articles/' || g, s.site,
       substr(p.body, 1 + g % 512, 2048), s.at, s.at, 'Complete', 'Complete'
FROM generate_series(1, {rows}) AS g
CROSS JOIN LATERAL (
    SELECT 'site-' || lpad((g % 1000)::text, 4, '0') || '.example' AS site,
           now() - make_interval(secs => {rows} - g) AS at
) AS s
JOIN soak_paragraphs AS p ON p.p = g % 64;
"""


def workflows(args: argparse.Namespace) -> tuple[Workflow, Workflow]:
    """``fetch`` and ``parse`` over pages; fetch hands each row on to parse."""
    options: dict[str, Any] = {
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "interval_seconds": INTERVAL_SECONDS,
    }

    async def parse_page(page_id: int, session: AsyncSession) -> None:
        """The second stage: nothing of its own."""

    parse = Workflow("parse", model=Page, service=parse_page, **options)

    async def fetch_page(page_id: int, session: AsyncSession) -> None:
        """The first stage: queue the row for parse, committed with this row's Complete."""
        await curate.queue(session, parse, page_id)

    return Workflow("fetch", model=Page, service=fetch_page, **options), parse


def counting(tally: protocol.Tally) -> ItemHook:
    """An item hook that counts outcomes: a row is done when its parse is Complete."""

    @asynccontextmanager
    async def hook(event: ItemEvent) -> AsyncIterator[None]:
        yield
        if event.outcome is not Outcome.COMPLETED:
            tally.count("failed")
        else:
            tally.count("done" if event.workflow == "parse" else "fetched")

    return hook


class CurateSoak:
    name = "curate"
    tables = ("pages",)
    backlog_sql = (
        "SELECT (SELECT count(*) FROM pages WHERE fetch_status = 'Queued')"
        " + (SELECT count(*) FROM pages WHERE parse_status = 'Queued')"
    )
    """Rows waiting for either stage (each count is served by that stage's queued index)."""

    def version(self) -> str:
        return curate.__version__

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        curate_runner.Curate().add_arguments(parser)  # --concurrency, --batch-size

    def settings(self, ctx: protocol.Context) -> dict[str, Any]:
        return {
            "workflows": "fetch, then parse (queued by fetch's service, same transaction)",
            "outcomes": "per_item",
            "batch_size": ctx.args.batch_size,
            "concurrency": ctx.args.concurrency,
            "interval_seconds": INTERVAL_SECONDS,
            "pool_size": self._pool_size(ctx),
            "listen_notify": True,
            "producer": "Workflow.queue (one UPDATE of the rows, and NOTIFY) per transaction",
            "worker": "curate.worker.run_worker",
        }

    def _pool_size(self, ctx: protocol.Context) -> int:
        """Room for both stages' items in flight, their claims, heartbeats and the rescuer
        at their peak: SQLAlchemy closes an overflow connection as it comes back, so a pool
        below the peak opens (and type-introspects) connections all the time, which showed
        as claims waiting (p99 about twice as long with 2 x concurrency + 2 in development)."""
        return 4 * ctx.args.concurrency + 2

    async def setup(self, ctx: protocol.Context, conn: asyncpg.Connection) -> dict[str, Any]:
        engine = _engine(ctx)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(SoakBase.metadata.create_all)
                await create_own_tables(connection)
        finally:
            await engine.dispose()
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(LOAD.format(rows=int(ctx.args.rows)))
        await conn.execute("VACUUM (ANALYZE) pages")
        body = await conn.fetchval(
            "SELECT avg(pg_column_size(body)) FROM (SELECT body FROM pages LIMIT 1000) AS b"
        )
        return {
            "load_seconds": round(time.perf_counter() - started, 1),
            "body_chars": 2048,
            "body_stored_bytes": round(float(body or 0)),
        }

    @contextlib.asynccontextmanager
    async def producer(self, ctx: protocol.Context) -> AsyncIterator[Any]:
        """``enqueue(ids)``: queue rows for fetch with curate's own API, one transaction."""
        engine = _engine(ctx)
        sessions = async_sessionmaker(engine)
        fetch, _ = workflows(ctx.args)

        async def enqueue(ids: list[int]) -> None:
            async with sessions() as session, session.begin():
                await fetch.queue(session, ids)

        try:
            yield enqueue
        finally:
            await engine.dispose()

    async def work(self, ctx: protocol.Context, ready: protocol.Ready) -> None:
        runtime = curate.configure(
            CurateSettings(
                database_url=ctx.dsn,
                database_schema=ctx.schema,
                pool_size=self._pool_size(ctx),
                listen_notify=True,
            )
        )
        tally = protocol.Tally()
        runtime.add_observer(tally)  # every claim statement: its rows and seconds
        runtime.add_item_hook(counting(tally))
        stages = workflows(ctx.args)
        for flow in stages:
            runtime.register(flow)
        engine = await runtime.database.engine()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await ready()
        reporter = asyncio.create_task(tally.report_every(protocol.REPORT_SECONDS))
        try:
            await run_worker(stages, runtime)
        finally:
            reporter.cancel()


def _engine(ctx: protocol.Context) -> Any:
    return create_async_engine(
        curate_runner._sqlalchemy_url(ctx.dsn),
        connect_args={"server_settings": {"search_path": ctx.schema}},
    )


SIDE = CurateSoak()
