"""Instant pick-up: NOTIFY wakes a workflow at once; delayed rows start when due.

The scheduler polls only once an hour, so a row that completes within a test's deadline
(two minutes, far more than a wake-up takes even on a busy machine) was started by a
wake-up, not by polling. Wake-ups start runs beside the scheduled ones, so one process
may hold several runs of ``work`` at once: each row must still run once. Each test has a
database of its own: NOTIFY channels span a database, and other test runs may share the
server's.
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
from tests.executions import ExecutionLog
from tests.helpers import insert_items, noop, status_counts
from tests.models import Item

ONCE_AN_HOUR = 3600.0


@pytest.fixture
def settings(curate_database: str) -> curate.CurateSettings:
    """A fresh database per test (a copy of the plugin's template), not a schema in the
    shared one, where another run's NOTIFY on ``curate_work`` would reach this test."""
    return curate.CurateSettings(database_url=curate_database, worker_id="test-worker", pool_size=5)


@pytest.fixture
def executions() -> ExecutionLog:
    return ExecutionLog(Item, "work")


@pytest.fixture
def work(executions: ExecutionLog) -> Workflow:
    return Workflow(
        "work",
        model=Item,
        service=executions.service(noop),
        interval_seconds=ONCE_AN_HOUR,
        batch_size=100,
    )


def schedule(work: Workflow) -> None:
    """Add ``process_pending_works`` to the scheduler and start it."""

    async def process_pending_works() -> None:
        await work.run()

    scheduling.add_workflow_job(work, process_pending_works)
    scheduling.start_scheduler()


@pytest.fixture
async def started(
    runtime: curate.Runtime, engine: AsyncEngine, work: Workflow
) -> AsyncIterator[curate.Runtime]:
    """The scheduler running ``work``, listening, after its first (empty) run."""
    await insert_items(engine, 3, status=None)
    schedule(work)
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

    # Long before the next poll: done by then, the rows were started by a wake-up.
    await wait_until(done, seconds=120, what=f"{count} rows Complete (a poll is an hour away)")


async def test_rows_queued_through_curate_start_at_once(
    started: curate.Runtime, engine: AsyncEngine, work: Workflow, executions: ExecutionLog
) -> None:
    sessions = await started.database.sessionmaker()
    async with sessions() as session, session.begin():
        await work.queue(session, [1, 2])
    await all_complete(engine, 2)
    await executions.assert_once_each([1, 2])


async def test_the_trigger_wakes_workers_for_rows_queued_by_plain_sql(
    started: curate.Runtime, engine: AsyncEngine, executions: ExecutionLog
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(with_trigger)
    async with engine.begin() as conn:
        await conn.execute(update(Item).values(work_status=ProcessingStatus.Queued))
    await all_complete(engine, 3)
    await executions.assert_once_each([1, 2, 3])


async def test_a_burst_of_queued_rows_is_one_notification(
    started: curate.Runtime, engine: AsyncEngine, executions: ExecutionLog
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
    await executions.assert_once_each(range(100, 5_100))
    notifier = started.notifier
    assert notifier is not None and notifier.received == 1


async def test_a_lost_listen_connection_comes_back(
    started: curate.Runtime, engine: AsyncEngine, work: Workflow, executions: ExecutionLog
) -> None:
    notifier = started.notifier
    assert notifier is not None
    async with engine.begin() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %curate_work%' AND pid <> pg_backend_pid()"
                " AND datname = current_database()"
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
    await executions.assert_once_each([3])


async def test_a_delayed_row_starts_when_due_not_at_the_next_poll(
    runtime: curate.Runtime, engine: AsyncEngine, work: Workflow, executions: ExecutionLog
) -> None:
    await insert_items(engine, 1)
    async with engine.begin() as conn:
        await conn.execute(
            update(Item).values(work_run_after=text("now() + interval '1.5 seconds'"))
        )
    schedule(work)
    try:
        await all_complete(engine, 1)
    finally:
        await scheduling.shutdown_scheduler()
    await executions.assert_once_each([1])
