"""The server's limits: no connection slot free, a table locked by a migration.

A server out of connections makes a worker wait, say so once and lose nothing. A lock held
on a workflow's table makes curate's own statements give up after a bounded time (per
transaction or per call, so also behind PgBouncer in transaction mode), say so once per
run, and carry on once the lock is gone; a service's own statements are never bounded.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

import curate
from curate.db.own_tables import create_own_tables
from curate.engine.driver import execute_alone
from curate.testing import wait_until
from tests.dedicated_server import DedicatedServer, dedicated_server
from tests.helpers import (
    configured,
    effects_per_item,
    insert_items,
    item_row,
    status_counts,
    worker_sessions,
)
from tests.models import Base, Effect, Item
from tests.pgbouncer import PgBouncer

LOCK_SECONDS = 0.3
STATEMENT_SECONDS = 1.0


def worker_id() -> str:
    """A worker id of the test's own, to find its connections in ``pg_stat_activity``."""
    return f"limits-{secrets.token_hex(4)}"


def warnings_and_worse(lines: list[str], caplog: pytest.LogCaptureFixture) -> list[str]:
    """loguru's lines at WARNING and up, and every record standard logging got."""
    loud = [line for line in lines if "| WARNING" in line or "| ERROR" in line]
    return loud + [record.getMessage() for record in caplog.records]


async def transactional(item_id: int, session: AsyncSession) -> None:
    """A service writing in its session: it needs a connection of its own."""
    session.add(Effect(item_id=item_id, note="done"))
    await session.flush()


# The server out of connections ------------------------------------------------------


@pytest.fixture
def small_server() -> Iterator[DedicatedServer]:
    """A server of six connections, none kept for superusers (the test's role is one)."""
    with dedicated_server(["max_connections = 6", "superuser_reserved_connections = 0"]) as server:
        yield server


async def fill(server: DedicatedServer) -> list[asyncpg.Connection]:
    """Connections taking every slot of ``server``, until it refuses one."""
    taken: list[asyncpg.Connection] = []
    while True:
        try:
            taken.append(await asyncpg.connect(server.url()))
        except asyncpg.TooManyConnectionsError:
            return taken


async def test_a_full_server_makes_workers_wait_and_lose_nothing(
    small_server: DedicatedServer, log_lines: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    runtime = curate.Runtime(
        curate.CurateSettings(database_url=small_server.url(), worker_id=worker_id(), pool_size=2)
    )
    try:
        engine = await runtime.database.engine()
        async with engine.begin() as conn:
            assert await conn.scalar(text("SHOW data_directory")) == str(small_server.data_dir)
            await conn.run_sync(Base.metadata.create_all)
            await create_own_tables(conn)
        await insert_items(engine, 40)
        await runtime.database.dispose()  # every connection the run needs is a new one
        taken = await fill(small_server)
        assert len(taken) == 6

        flow = curate.Workflow("work", model=Item, service=transactional, concurrency=4)
        run = asyncio.create_task(flow.run(runtime))

        async def refused() -> bool:
            return any("refuses new connections" in line for line in log_lines)

        await wait_until(refused, what="the worker to meet the full server")
        assert not run.done()
        for connection in taken:
            await connection.close()
        result = await run

        engine = await runtime.database.engine()
        assert (result.claimed, result.completed, result.errors) == (40, 40, [])
        assert await status_counts(engine) == {"Complete": 40}
        assert await effects_per_item(engine) == dict.fromkeys(range(1, 41), 1)
        assert {(await item_row(engine, n)).work_attempts for n in range(1, 41)} == {1}
    finally:
        await runtime.close()
    loud = warnings_and_worse(log_lines, caplog)
    assert len(loud) == 1, loud
    assert "the database refuses new connections (sorry, too many clients already)" in loud[0]
    assert any("accepts new connections again" in line for line in log_lines)
    assert not any("Traceback" in line for line in log_lines)


# A table locked by a migration --------------------------------------------------------


@pytest.fixture(params=["direct", "pgbouncer"])
async def limited(
    request: pytest.FixtureRequest, database_url: str, schema: str
) -> AsyncIterator[curate.Runtime]:
    """A runtime with short limits: on the server directly, and through PgBouncer in
    transaction mode (where a session's ``SET`` and startup parameters do not hold)."""
    url = database_url
    pooling = "session"
    if request.param == "pgbouncer":
        bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
        url, pooling = bouncer.url(database_url), "transaction"
    settings = curate.CurateSettings(
        database_url=url,
        database_pooling=pooling,
        database_schema=schema,
        worker_id=worker_id(),
        pool_size=2,
        lock_timeout_seconds=LOCK_SECONDS,
        statement_timeout_seconds=STATEMENT_SECONDS,
    )
    async with configured(settings) as runtime:
        yield runtime


@asynccontextmanager
async def migration_lock(admin: AsyncEngine, schema: str) -> AsyncIterator[AsyncConnection]:
    """What a migration's ALTER TABLE holds on ``items`` until it commits."""
    async with admin.connect() as conn, conn.begin():
        await conn.execute(text(f'LOCK TABLE "{schema}".items IN ACCESS EXCLUSIVE MODE'))
        yield conn


async def nothing_waits(admin: AsyncEngine, runtime: curate.Runtime) -> bool:
    """None of this worker's statements waits for a lock, as the server sees them: those
    that gave up were cancelled there too, not just abandoned by the client."""
    worker_id = runtime.settings.worker_id
    return await worker_sessions(admin, worker_id, "wait_event_type = 'Lock'") == 0


def about_the_lock(lines: list[str]) -> list[str]:
    return [
        line
        for line in lines
        if ("| WARNING" in line or "| ERROR" in line)
        and ("StatementTimeoutError" in line or "lock timeout" in line)
    ]


async def test_a_locked_table_makes_runs_give_up_in_time_and_resume_after(
    limited: curate.Runtime, admin_engine: AsyncEngine, schema: str, log_lines: list[str]
) -> None:
    engine = await limited.database.engine()
    await insert_items(engine, 10)
    flow = curate.Workflow("work", model=Item, service=transactional)
    async with migration_lock(admin_engine, schema):
        for _ in (1, 2):
            said = len(about_the_lock(log_lines))
            started = time.monotonic()
            result = await flow.run(limited)
            assert time.monotonic() - started < STATEMENT_SECONDS + 3
            assert result.claimed == 0
            assert "StatementTimeoutError" in result.errors[0]
            assert len(about_the_lock(log_lines)) - said <= 1, about_the_lock(log_lines)
            await wait_until(
                lambda: nothing_waits(admin_engine, limited), what="the claim to be cancelled"
            )
        started = time.monotonic()
        assert await limited.rescue() == 0  # curate's own transaction: lock_timeout
        assert time.monotonic() - started < LOCK_SECONDS + 3
        assert any("lock timeout" in line for line in log_lines)
    result = await flow.run(limited)
    assert (result.claimed, result.completed) == (10, 10)
    assert await status_counts(engine) == {"Complete": 10}


async def test_items_in_flight_when_the_table_is_locked_come_back_after_it(
    limited: curate.Runtime, admin_engine: AsyncEngine, schema: str, log_lines: list[str]
) -> None:
    """Their outcome writes give up; their leases hand them back once the lock is gone."""
    engine = await limited.database.engine()
    await insert_items(engine, 3)
    started, go_on = asyncio.Event(), asyncio.Event()
    running = 0

    async def waits(item_id: int, session: AsyncSession) -> None:
        nonlocal running
        running += 1
        if running == 3:
            started.set()
        await go_on.wait()

    flow = curate.Workflow(
        "work", model=Item, service=waits, concurrency=3, lease_seconds=1, heartbeat_seconds=0.5
    )
    run = asyncio.create_task(flow.run(limited))
    await asyncio.wait_for(started.wait(), 30)
    async with migration_lock(admin_engine, schema):
        go_on.set()
        result = await run
        assert (result.completed, result.unrecorded) == (0, 3)
        await wait_until(lambda: nothing_waits(admin_engine, limited), what="the cancels")
    # One line for the heartbeat, one for the three outcomes: not one per statement.
    assert len(about_the_lock(log_lines)) <= 2, about_the_lock(log_lines)

    async def rescued() -> bool:
        await limited.rescue()
        return (await status_counts(engine))["Queued"] == 3

    await wait_until(rescued, what="the expired leases to be rescued")
    result = await flow.run(limited)
    assert result.completed == 3
    assert await status_counts(engine) == {"Complete": 3}


async def test_limits_never_reach_the_services_own_statements(
    limited: curate.Runtime, admin_engine: AsyncEngine
) -> None:
    """A service may wait for locks and run long: only curate's statements are bounded."""
    engine = await limited.database.engine()
    await insert_items(engine, 1)
    seen: dict[str, Any] = {}

    async def slow(item_id: int, session: AsyncSession) -> None:
        seen["lock_timeout"] = await session.scalar(text("SHOW lock_timeout"))
        seen["statement_timeout"] = await session.scalar(text("SHOW statement_timeout"))
        await session.execute(select(func.pg_sleep(STATEMENT_SECONDS * 1.5)))

    result = await curate.Workflow("work", model=Item, service=slow).run(limited)
    assert result.completed == 1
    assert seen == {"lock_timeout": "0", "statement_timeout": "0"}


async def test_a_statement_over_its_time_is_cancelled_and_its_connection_kept(
    engine: AsyncEngine,
) -> None:
    pid = select(func.pg_backend_pid().label("pid"))
    (before,) = await execute_alone(engine, pid, {}, cancel_after=STATEMENT_SECONDS)
    with pytest.raises(curate.StatementTimeoutError, match=r"cancelled after 0\.2 s"):
        await execute_alone(engine, select(func.pg_sleep(30)), {}, cancel_after=0.2)
    (after,) = await execute_alone(engine, pid, {}, cancel_after=STATEMENT_SECONDS)
    assert after.pid == before.pid  # the same connection, usable, back in the pool
