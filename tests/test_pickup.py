"""Instant pick-up: NOTIFY wakes a workflow at once; delayed rows start when due.

Every test polls the scheduler only once a minute, so a row that completes within the
test's deadline was started by a wake-up, not by polling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import ProcessingStatus, Workflow, scheduling
from curate.migrations import create_notify_trigger
from curate.testing import wait_until
from tests.helpers import insert_items, noop, status_counts
from tests.models import Item

ONCE_A_MINUTE = 60.0

work = Workflow("work", model=Item, service=noop, interval_seconds=ONCE_A_MINUTE, batch_size=100)


async def process_pending_works() -> None:
    await work.run()


@pytest.fixture
async def started(runtime: curate.Runtime, engine: AsyncEngine) -> AsyncIterator[curate.Runtime]:
    """The scheduler running ``work``, listening, after its first (empty) run."""
    await insert_items(engine, 3, status=None)
    scheduling.add_workflow_job(work, process_pending_works)
    scheduling.start_scheduler()
    notifier = runtime.notifier
    assert notifier is not None

    async def listening() -> bool:
        return notifier.connected.is_set()

    await wait_until(listening, what="the LISTEN connection")
    yield runtime
    await scheduling.shutdown_scheduler()


def with_trigger(connection: Connection) -> None:
    with Operations.context(MigrationContext.configure(connection)):
        create_notify_trigger("items", "work")


async def all_complete(engine: AsyncEngine, count: int) -> None:
    async def done() -> bool:
        return (await status_counts(engine))["Complete"] == count

    await wait_until(done, seconds=10, what=f"{count} rows Complete (a poll is a minute away)")


async def test_rows_queued_through_curate_start_at_once(
    started: curate.Runtime, engine: AsyncEngine
) -> None:
    sessions = await started.database.sessionmaker()
    async with sessions() as session, session.begin():
        await work.queue(session, [1, 2])
    await all_complete(engine, 2)


async def test_the_trigger_wakes_workers_for_rows_queued_by_plain_sql(
    started: curate.Runtime, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(with_trigger)
    async with engine.begin() as conn:
        await conn.execute(update(Item).values(work_status=ProcessingStatus.Queued))
    await all_complete(engine, 3)


async def test_a_burst_of_queued_rows_is_one_notification(
    started: curate.Runtime, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(with_trigger)
        await conn.execute(
            text(
                "INSERT INTO items (id, payload, work_status)"
                " SELECT n, '', 'Queued' FROM generate_series(100, 5099) AS n"
            )
        )
    await all_complete(engine, 5_000)
    notifier = started.notifier
    assert notifier is not None and notifier.received == 1


async def test_a_lost_listen_connection_comes_back(
    started: curate.Runtime, engine: AsyncEngine
) -> None:
    notifier = started.notifier
    assert notifier is not None
    async with engine.begin() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %curate_work%' AND pid <> pg_backend_pid()"
            )
        )
    assert killed >= 1

    async def reconnected() -> bool:
        return notifier.connected.is_set()

    await wait_until(reconnected, what="the LISTEN connection to come back")
    sessions = await started.database.sessionmaker()
    async with sessions() as session, session.begin():
        await work.queue(session, [3])
    await all_complete(engine, 1)


async def test_a_delayed_row_starts_when_due_not_at_the_next_poll(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 1)
    async with engine.begin() as conn:
        await conn.execute(
            update(Item).values(work_run_after=text("now() + interval '1.5 seconds'"))
        )
    scheduling.add_workflow_job(work, process_pending_works)
    scheduling.start_scheduler()
    try:
        await all_complete(engine, 1)
    finally:
        await scheduling.shutdown_scheduler()
