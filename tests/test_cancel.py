"""Cancel on real PostgreSQL: waiting rows end cancelled at once; a running item is
cancelled where it runs, by NOTIFY or, without LISTEN, by its heartbeat, in this process
and in worker processes of their own; the service's transaction is rolled back and the
outcome fenced like every outcome."""

from __future__ import annotations

import asyncio
import enum
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, Workflow, operations, workflow_columns
from curate.sql.cancel import CancelSelection
from curate.testing import wait_until
from tests.executions import ExecutionTable
from tests.helpers import create_table, curate_run, effects_per_item, insert_items, item_row, noop
from tests.models import Effect, Item

TWO_AT_ONCE = ("--concurrency", "2")


class Hangs:
    """A service that writes an effect, says it started, then waits until cancelled."""

    def __init__(self) -> None:
        self.started: dict[int, asyncio.Event] = {}

    def event(self, item_id: int) -> asyncio.Event:
        return self.started.setdefault(item_id, asyncio.Event())

    async def __call__(self, item_id: int, session: AsyncSession) -> None:
        session.add(Effect(item_id=item_id, note="before the cancel"))
        await session.flush()
        self.event(item_id).set()
        await asyncio.Event().wait()


def work(service: Any, **kwargs: Any) -> Workflow:
    return Workflow("work", model=Item, service=service, **kwargs)


async def attempts_of(engine: AsyncEngine, workflow: Workflow, item_id: int) -> list[Any]:
    found = await operations.read_attempts(engine, workflow, item_id)
    assert found is not None
    return found


async def test_queued_rows_end_cancelled_at_once_and_others_are_left_alone(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 3)
    workflow = work(noop)
    selection = CancelSelection(ids=(1, 2))
    assert await operations.count_cancel(engine, workflow, selection) == operations.CancelCount(
        2, 0
    )
    done = await operations.cancel(engine, workflow, selection, "duplicate upload")
    assert done == operations.CancelCount(waiting=2, running=0)
    for item_id in (1, 2):
        row = await item_row(engine, item_id)
        # ProcessingStatus has no Cancelled member: the failed status, saying why.
        assert (row.work_status, row.work_error) == (
            ProcessingStatus.Error,
            "Cancelled: duplicate upload",
        )
        [record] = await attempts_of(engine, workflow, item_id)
        assert (record.outcome, record.worker, record.started_at) == ("cancelled", None, None)
    # The row not chosen still runs.
    assert (await workflow.run()).completed == 1
    assert (await item_row(engine, 3)).work_status == ProcessingStatus.Complete
    # Cancelling again finds nothing: the cancelled rows are final.
    assert await operations.cancel(engine, workflow, selection) == operations.CancelCount(0, 0)


class WithCancelled(enum.StrEnum):
    Queued = "Queued"
    Processing = "Processing"
    Complete = "Complete"
    Error = "Error"
    Cancelled = "Cancelled"


async def test_errors_move_to_a_cancelled_status_only_where_the_workflow_has_one(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 2, status=ProcessingStatus.Error)
    plain = work(noop)
    with pytest.raises(curate.ConfigurationError, match="has no cancelled status"):
        await operations.cancel(engine, plain, CancelSelection(errors=True))

    table = await create_table(
        engine,
        "tickets",
        Column("id", Integer, primary_key=True, autoincrement=False),
        *workflow_columns("job", WithCancelled),
    )
    async with engine.begin() as conn:
        await conn.execute(
            table.insert(), [{"id": 1, "job_status": "Error"}, {"id": 2, "job_status": "Queued"}]
        )
    jobs = Workflow("job", model=table, service=noop, status_enum=WithCancelled)
    assert jobs.statuses.cancelled is WithCancelled.Cancelled
    assert await operations.cancel(engine, jobs, CancelSelection(errors=True)) == (
        operations.CancelCount(1, 0)
    )
    async with engine.connect() as conn:
        statuses = dict((await conn.execute(select(table.c.id, table.c.job_status))).all())
    assert statuses == {1: WithCancelled.Cancelled, 2: WithCancelled.Queued}


async def test_a_processing_row_whose_worker_is_gone_ends_cancelled_at_once(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 1)
    async with engine.begin() as conn:
        await conn.execute(
            update(Item).values(
                work_status=ProcessingStatus.Processing,
                work_attempts=1,
                work_claimed_by="gone#0",
                work_lease_until=text("now() - interval '1 minute'"),
            )
        )
    done = await operations.cancel(engine, work(noop), CancelSelection(ids=(1,)))
    assert done == operations.CancelCount(waiting=1, running=0)
    row = await item_row(engine, 1)
    assert (row.work_status, row.work_claimed_by) == (ProcessingStatus.Error, None)


@pytest.mark.parametrize("heard_by", ["notify", "heartbeat"])
async def test_a_running_item_is_cancelled_where_it_runs(
    runtime: curate.Runtime, engine: AsyncEngine, heard_by: str
) -> None:
    """The services wait forever; a cancel stops the one asked. By NOTIFY (LISTEN on) or,
    with no LISTEN connection, at the next heartbeat. Its effect is rolled back; the other
    running item is untouched until it is cancelled too."""
    await insert_items(engine, 2)
    hangs = Hangs()
    workflow = work(hangs, heartbeat_seconds=0.2, concurrency=2)
    runtime.register(workflow)
    if heard_by == "notify":
        runtime.begin_pickup()
        assert runtime.notifier is not None
        await asyncio.wait_for(runtime.notifier.connected.wait(), 10)
    runs = asyncio.create_task(runtime.run(workflow))  # with LISTEN, the wake-up's run may claim
    await asyncio.wait_for(hangs.event(1).wait(), 10)
    await asyncio.wait_for(hangs.event(2).wait(), 10)
    done = await operations.cancel(engine, workflow, CancelSelection(ids=(1,)), "wrong file")
    assert done == operations.CancelCount(waiting=0, running=1)

    async def final(item_id: int) -> bool:
        return (await item_row(engine, item_id)).work_status == ProcessingStatus.Error

    await wait_until(lambda: final(1), seconds=10, what="item 1 cancelled")
    assert (await item_row(engine, 2)).work_status == ProcessingStatus.Processing
    assert await operations.cancel(engine, workflow, CancelSelection(ids=(2,))) == (
        operations.CancelCount(waiting=0, running=1)
    )
    await wait_until(lambda: final(2), seconds=10, what="item 2 cancelled")
    await asyncio.wait_for(runs, 10)
    assert await runtime.stop_runs(grace_seconds=10)
    row = await item_row(engine, 1)
    assert row.work_error == "Cancelled: wrong file"
    assert await effects_per_item(engine) == {}  # both services' writes rolled back
    [record] = await attempts_of(engine, workflow, 1)
    assert (record.outcome, record.worker) == ("cancelled", "test-worker")
    assert record.started_at is not None
    if heard_by == "heartbeat":
        assert runtime.notifier is None


async def test_running_items_are_cancelled_in_worker_processes(
    runtime: curate.Runtime, engine: AsyncEngine, database_url: str, schema: str, tmp_path: Path
) -> None:
    """Two worker processes run two items each; one hears cancels by NOTIFY, the other
    (no LISTEN) at its heartbeat. Each item is cancelled by its own worker, the service's
    write rolled back, the attempt recorded with that worker; the workers then stop
    cleanly."""
    await insert_items(engine, 4, status=None)
    await ExecutionTable.create(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CURATE_", "WORK_"))}
    env |= {
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "CURATE_APP": "tests.cancel_app:WORKFLOWS",
        "WORK_SCHEDULER_BATCH_SIZE": "1",
        "WORK_SCHEDULER_HEARTBEAT_SECONDS": "0.5",
    }
    sessions = await runtime.database.sessionmaker()
    log = ExecutionTable(Item, "work", engine)

    async def queue_and_wait(ids: list[int]) -> None:
        async with sessions() as session, session.begin():
            await work(noop).queue(session, ids)

        async def running() -> bool:
            return {e.item_id for e in await log.executions()} >= set(ids)

        await wait_until(running, seconds=60, what=f"items {ids} running")

    polling_env = {**env, "CURATE_LISTEN_NOTIFY": "false"}
    with curate_run(polling_env, "polling", tmp_path / "polling.log", *TWO_AT_ONCE) as polling:
        await queue_and_wait([1, 2])  # the polling worker's two slots are busy now
        with curate_run(env, "listening", tmp_path / "listening.log", *TWO_AT_ONCE) as listening:
            await queue_and_wait([3, 4])
            ran_on = {e.item_id: e.worker for e in await log.executions()}
            assert ran_on == {1: "polling", 2: "polling", 3: "listening", 4: "listening"}
            everything = CancelSelection(ids=(1, 2, 3, 4))
            done = await operations.cancel(engine, work(noop), everything, "stop")
            assert done == operations.CancelCount(waiting=0, running=4)

            async def all_cancelled() -> bool:
                async with engine.connect() as conn:
                    errors = await conn.scalar(
                        select(func.count()).where(Item.work_error == "Cancelled: stop")
                    )
                return errors == 4

            await wait_until(all_cancelled, seconds=30, what="4 items cancelled")
            for worker in (listening, polling):
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=60) == 0
    assert await effects_per_item(engine) == {}
    for item_id, worker_id in ran_on.items():
        [record] = await attempts_of(engine, work(noop), item_id)
        assert (record.outcome, record.worker) == ("cancelled", worker_id)
    await log.assert_once_each(range(1, 5))


async def test_a_cancel_whose_worker_died_before_hearing_it_is_not_lost(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """The request is made while the lease is live; the worker dies without hearing it.
    When the lease expires, the rescue ends the row cancelled instead of queueing it
    again; another expired row, not asked, is queued again as ever."""
    await insert_items(engine, 2)
    async with engine.begin() as conn:
        await conn.execute(
            update(Item).values(
                work_status=ProcessingStatus.Processing,
                work_attempts=1,
                work_claimed_by="dead-worker#" + "0" * 16,
                work_lease_until=text("now() + interval '1 minute'"),
            )
        )
    workflow = work(noop)
    done = await operations.cancel(engine, workflow, CancelSelection(ids=(1,)), "bad data")
    assert done == operations.CancelCount(waiting=0, running=1)
    async with engine.begin() as conn:  # the worker is gone: its leases run out
        await conn.execute(update(Item).values(work_lease_until=text("now() - interval '1 s'")))
    runtime.register(workflow)
    assert await runtime.rescue() == 1  # item 2 queued again
    one, two = await item_row(engine, 1), await item_row(engine, 2)
    assert (one.work_status, one.work_error) == (ProcessingStatus.Error, "Cancelled: bad data")
    assert one.work_claimed_by is None  # a late outcome of the old claim is refused
    assert two.work_status == ProcessingStatus.Queued
    [record] = await attempts_of(engine, workflow, 1)
    assert (record.outcome, record.attempt, record.worker) == ("cancelled", 1, None)
