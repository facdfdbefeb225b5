"""The connection budget: more items in flight than pooled connections, handed back cleanly.

A process opens at most ``pool_size + max_overflow`` (2 x CURATE_POOL_SIZE) connections for
its engine, and closes the overflow ones as they come back. Connections are counted on the
server, in ``pg_stat_activity``, by the ``application_name`` curate gives them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate.engine.backoff import is_connection_error
from curate.engine.driver import execute_alone
from curate.testing import wait_until
from tests.helpers import (
    configured,
    effects_per_item,
    insert_items,
    status_counts,
    worker_sessions,
)
from tests.models import Effect, Item

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

POOL_SIZE = 2
MOST_CONNECTIONS = 2 * POOL_SIZE
"""pool_size + max_overflow, as `curate.db.Database.engine` sizes the pool."""

MISHANDLED = ("Exception closing connection", "QueueFull", "MissingGreenlet", "Traceback")
"""What a connection handed back outside SQLAlchemy's greenlet leaves in the log."""


@pytest.fixture
def worker_id() -> str:
    """A worker id of this test's own: other tests' connections are never counted."""
    return f"budget-{secrets.token_hex(4)}"


@pytest.fixture
async def small_pool(
    database_url: str, schema: str, worker_id: str
) -> AsyncIterator[curate.Runtime]:
    settings = curate.CurateSettings(
        database_url=database_url, database_schema=schema, worker_id=worker_id, pool_size=POOL_SIZE
    )
    async with configured(settings) as runtime:
        yield runtime


def mishandled(lines: list[str], caplog: pytest.LogCaptureFixture, stderr: str) -> list[str]:
    """Lines of loguru, standard logging or stderr that show a connection mishandled."""
    everything = [*lines, *(record.getMessage() for record in caplog.records), stderr]
    everything += [record.exc_text or "" for record in caplog.records]
    return [line for line in everything if any(sign in line for sign in MISHANDLED)]


async def test_forty_in_flight_on_two_pooled_connections(
    small_pool: curate.Runtime,
    admin_engine: AsyncEngine,
    worker_id: str,
    log_lines: list[str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.WARNING)
    engine = await small_pool.database.engine()
    await insert_items(engine, 120)
    holding = 0
    pool_full, release = asyncio.Event(), asyncio.Event()

    async def transactional(item_id: int, session: AsyncSession) -> None:
        nonlocal holding
        session.add(Effect(item_id=item_id, note="done"))
        await session.flush()  # the item now holds a connection until its outcome is written
        holding += 1
        if holding == MOST_CONNECTIONS:
            pool_full.set()
        await release.wait()

    flow = curate.Workflow("work", model=Item, service=transactional, concurrency=40)
    run = asyncio.create_task(flow.run(small_pool))
    await asyncio.wait_for(pool_full.wait(), 30)
    during = await worker_sessions(admin_engine, worker_id)
    release.set()
    result = await run
    after = await worker_sessions(admin_engine, worker_id)

    assert (result.claimed, result.completed) == (120, 120)
    assert await status_counts(engine) == {"Complete": 120}
    assert await effects_per_item(engine) == dict.fromkeys(range(1, 121), 1)
    assert during == MOST_CONNECTIONS
    assert 1 <= after <= POOL_SIZE  # the overflow connections were closed, not dropped
    assert mishandled(log_lines, caplog, capfd.readouterr().err) == []


async def test_the_pools_connections_are_closed_at_shutdown(
    small_pool: curate.Runtime, admin_engine: AsyncEngine, worker_id: str
) -> None:
    engine = await small_pool.database.engine()
    await insert_items(engine, 30)

    async def noop(item_id: int, session: AsyncSession) -> None:
        await asyncio.sleep(0)

    await curate.Workflow("work", model=Item, service=noop, concurrency=10).run(small_pool)
    assert 1 <= await worker_sessions(admin_engine, worker_id) <= POOL_SIZE
    await small_pool.close()
    assert await worker_sessions(admin_engine, worker_id) == 0


async def test_a_cancelled_statement_never_goes_back_to_the_pool(
    small_pool: curate.Runtime, admin_engine: AsyncEngine, worker_id: str
) -> None:
    """A statement cut off by its task's cancellation leaves its connection mid-protocol:
    the connection is closed (the server's backend ends), the next statement gets a
    working one."""
    engine = await small_pool.database.engine()
    sleeping = asyncio.create_task(execute_alone(engine, select(func.pg_sleep(30)), {}))

    async def asleep() -> int:
        return await worker_sessions(admin_engine, worker_id, "query LIKE '%pg_sleep%'")

    async def started() -> bool:
        return await asleep() == 1

    async def ended() -> bool:
        return await asleep() == 0

    await wait_until(started, what="the statement to run")
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    await wait_until(ended, what="its backend to end")
    (row,) = await execute_alone(engine, select(literal(1).label("one")), {})
    assert row.one == 1


async def test_a_connection_the_server_dropped_is_replaced_with_the_rest_of_the_pool(
    small_pool: curate.Runtime, admin_engine: AsyncEngine
) -> None:
    """A broken connection means every pooled one is suspect (a restart): after one failed
    statement, the next gets a fresh connection although the pool held another old one."""
    engine = await small_pool.database.engine()
    pid = select(func.pg_backend_pid().label("pid"))
    first, second = await asyncio.gather(
        execute_alone(engine, pid, {}), execute_alone(engine, pid, {})
    )
    old = [first[0].pid, second[0].pid]
    assert old[0] != old[1]
    pids = {"pids": old}
    async with admin_engine.connect() as conn:
        terminate = "SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) pid"
        await conn.execute(text(terminate), pids)

    async def gone() -> bool:
        async with admin_engine.connect() as conn:
            alive = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), pids
            )
        return bool(alive == 0)

    await wait_until(gone, what="the backends to end")
    with pytest.raises(Exception) as broken:
        await execute_alone(engine, pid, {})
    assert is_connection_error(broken.value)
    (row,) = await execute_alone(engine, pid, {})
    assert row.pid not in old
