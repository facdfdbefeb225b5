"""Snooze on real PostgreSQL: the service's transaction rolls back, the row waits for the
delay with its attempt given back; the snoozes in a row are bounded; a table without the
snoozes column spends the attempt instead; a fresh queue resets the count."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, RetryPolicy, Snooze, Workflow, operations, workflow_columns
from curate.testing import WorkflowHarness
from tests.helpers import (
    create_table,
    effects_per_item,
    insert_items,
    item_row,
    noop,
    worker_runtimes,
)
from tests.models import Effect, Item


class SnoozesFirst:
    """Writes an effect, then snoozes the first ``times`` calls of each item for
    ``seconds``; the next call completes."""

    def __init__(self, times: int, seconds: float | timedelta) -> None:
        self.times = times
        self.seconds = seconds
        self.calls: dict[Any, int] = {}

    async def __call__(self, item_id: Any, session: AsyncSession) -> None:
        self.calls[item_id] = self.calls.get(item_id, 0) + 1
        session.add(Effect(item_id=item_id if isinstance(item_id, int) else 0, note="call"))
        if self.calls[item_id] <= self.times:
            raise Snooze(self.seconds)


def work(service: Any, **kwargs: Any) -> Workflow:
    return Workflow(
        "work",
        model=Item,
        service=service,
        retry=RetryPolicy(max_attempts=2, base_seconds=0.0, max_seconds=0.0),
        **kwargs,
    )


async def outcomes(engine: AsyncEngine, workflow: Workflow, item_id: Any) -> list[str]:
    found = await operations.read_attempts(engine, workflow, item_id)
    assert found is not None
    return [a.outcome for a in reversed(found)]


async def test_a_snooze_waits_its_delay_and_spends_no_attempt(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 1)
    workflow = work(SnoozesFirst(times=1, seconds=timedelta(minutes=5)))
    harness = WorkflowHarness(runtime)
    now = harness.freeze_time()

    result = await harness.drain(workflow)
    assert (result.snoozed, result.completed) == (1, 0)
    row = await item_row(engine, 1)
    assert (row.work_status, row.work_attempts, row.work_snoozes) == (ProcessingStatus.Queued, 0, 1)
    assert row.work_run_after == now + timedelta(minutes=5) and row.work_error is None
    assert await effects_per_item(engine) == {}  # the snoozed call's write rolled back

    harness.advance_time(minutes=4)
    assert (await harness.drain(workflow)).claimed == 0  # not due yet
    harness.advance_time(minutes=1)
    assert (await harness.drain(workflow)).completed == 1
    row = await item_row(engine, 1)
    assert (row.work_status, row.work_attempts) == (ProcessingStatus.Complete, 1)
    assert await effects_per_item(engine) == {1: 1}
    assert await outcomes(engine, workflow, 1) == ["snoozed"]  # a completion: no row (default)


async def test_snoozes_in_a_row_are_bounded_then_spend_attempts(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """max_snoozes=2 and 2 attempts: two free snoozes, then each snooze is a failed
    attempt, the last one final. A service that always snoozes ends in Error."""
    await insert_items(engine, 1)
    workflow = work(SnoozesFirst(times=1_000, seconds=0), max_snoozes=2)
    await WorkflowHarness(runtime).drain(workflow)
    row = await item_row(engine, 1)
    assert (row.work_status, row.work_attempts, row.work_snoozes) == (ProcessingStatus.Error, 2, 2)
    assert row.work_error == (
        "SnoozeLimitError: snoozed for 0 s, spending the attempt:"
        " it snoozed 2 times already (max_snoozes)"
    )
    assert await outcomes(engine, workflow, 1) == ["snoozed", "snoozed", "retried", "failed"]


async def test_a_fresh_queue_resets_the_snoozes(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 1)
    workflow = work(SnoozesFirst(times=1, seconds=0))
    await WorkflowHarness(runtime).drain(workflow)
    assert (await item_row(engine, 1)).work_snoozes == 1
    sessions = await runtime.database.sessionmaker()
    async with sessions() as session, session.begin():
        await workflow.queue(session, [1])
    assert (await item_row(engine, 1)).work_snoozes == 0


async def test_without_the_snoozes_column_a_snooze_spends_the_attempt(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    columns = [c for c in workflow_columns("job") if c.name != "job_snoozes"]
    table = await create_table(
        engine, "older", Column("id", Integer, primary_key=True, autoincrement=False), *columns
    )
    async with engine.begin() as conn:
        await conn.execute(table.insert().values(id=1, job_status="Queued"))
    service = SnoozesFirst(times=1, seconds=30)
    jobs = Workflow("job", model=table, service=service, retry=RetryPolicy(max_attempts=3))
    harness = WorkflowHarness(runtime)
    now = harness.freeze_time()
    await harness.drain(jobs)
    async with engine.connect() as conn:
        row = (await conn.execute(select(table))).one()
    assert (row.job_status, row.job_attempts) == ("Queued", 1)  # the attempt is spent
    assert row.job_run_after == now + timedelta(seconds=30)  # after the snooze's delay
    assert row.job_error == (
        "SnoozeLimitError: snoozed for 30 s, spending the attempt:"
        " table older has no snoozes column to count it in"
    )
    harness.advance_time(seconds=30)
    assert (await harness.drain(jobs)).completed == 1


def test_a_snooze_takes_seconds_or_a_timedelta_within_bounds() -> None:
    assert Snooze(timedelta(minutes=5)).seconds == 300 and Snooze(2.5).seconds == 2.5
    with pytest.raises(curate.ConfigurationError, match="between 0 and"):
        Snooze(-1)
    with pytest.raises(curate.ConfigurationError, match="between 0 and"):
        Snooze(timedelta(days=400))


async def test_a_snooze_taken_by_one_worker_is_run_by_another(
    settings: curate.CurateSettings, engine: AsyncEngine
) -> None:
    """The snooze lives on the row: a second worker (its own runtime, engine and claims,
    as another process has) runs the item once it is due, as its first attempt."""
    await insert_items(engine, 1)
    async with worker_runtimes(settings, 2) as (first, second):
        harness = WorkflowHarness(first)
        harness.freeze_time()
        snoozing = work(SnoozesFirst(times=1_000, seconds=30))
        assert (await first.run(snoozing)).snoozed == 1
        assert (await second.run(work(noop))).claimed == 0  # not due yet, for anyone
        harness.advance_time(seconds=30)
        assert (await second.run(work(noop))).completed == 1
    row = await item_row(engine, 1)
    assert (row.work_status, row.work_attempts) == (ProcessingStatus.Complete, 1)
    assert row.work_claimed_by.startswith("worker-1#")
