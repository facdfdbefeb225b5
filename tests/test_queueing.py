"""Queueing: now, at a time, after a delay, with a priority; in the caller's transaction;
and the dual-status helper that queues from a curation value."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, String, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import DualStatus, ProcessingStatus, Workflow
from curate.clock import clock
from tests.helpers import create_table, insert_items, item_row, noop, status_counts
from tests.models import Item, SeedItem


@pytest.fixture
def frozen() -> Iterator[datetime]:
    yield clock.freeze()
    clock.unfreeze()


def ordered(claims: list[int]) -> Any:
    """A service that notes the order in which items started."""

    async def service(item_id: int, session: AsyncSession) -> None:
        claims.append(item_id)

    return service


async def sessions(runtime: curate.Runtime) -> Any:
    return await runtime.database.sessionmaker()


async def test_run_in_and_run_at_wait_until_due_and_the_clock_moves(
    runtime: curate.Runtime, engine: AsyncEngine, frozen: datetime
) -> None:
    await insert_items(engine, 3, status=None)
    work = Workflow("work", model=Item, service=noop)
    async with (await sessions(runtime))() as session, session.begin():
        await curate.queue(session, work, 1)  # now
        await curate.queue(session, work, 2, run_in=60)
        await curate.queue(session, work, [3], run_at=frozen + timedelta(hours=2))

    assert (await work.run()).completed == 1
    clock.advance(timedelta(seconds=61))
    assert (await work.run()).completed == 1
    assert (await item_row(engine, 3)).work_status == ProcessingStatus.Queued
    clock.advance(timedelta(hours=2))
    assert (await work.run()).completed == 1
    assert await status_counts(engine) == {"Complete": 3}


async def test_without_a_frozen_clock_a_future_row_waits_for_the_database_time(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 1, status=None)
    work = Workflow("work", model=Item, service=noop)
    async with (await sessions(runtime))() as session, session.begin():
        await work.queue(session, [1], run_in=timedelta(minutes=5))
    assert (await work.run()).claimed == 0
    row = await item_row(engine, 1)
    assert row.work_run_after > datetime.now(UTC) + timedelta(minutes=4)


async def test_higher_priority_runs_first_then_queue_order(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 5, status=None)
    started: list[int] = []
    work = Workflow("work", model=Item, service=ordered(started), batch_size=10)
    async with (await sessions(runtime))() as session, session.begin():
        await curate.queue(session, work, [1, 2, 3])
        await curate.queue(session, work, 4, priority=10)
        await curate.queue(session, work, 5, priority=-1)
    await work.run()
    assert started == [4, 1, 2, 3, 5]


async def test_queueing_commits_with_the_callers_transaction_or_not_at_all(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 2, status=None)
    work = Workflow("work", model=Item, service=noop)
    with pytest.raises(RuntimeError):
        async with (await sessions(runtime))() as session, session.begin():
            await curate.queue(session, work, [1, 2])
            raise RuntimeError("the caller's transaction fails")
    assert await status_counts(engine) == {"None": 2}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"run_at": datetime(2030, 1, 1, tzinfo=UTC), "run_in": 5}, "run_at or run_in, not both"),
        ({"run_at": datetime(2030, 1, 1)}, "needs a timezone"),
    ],
)
async def test_bad_schedules_are_clear_errors(
    runtime: curate.Runtime, options: dict[str, Any], message: str
) -> None:
    work = Workflow("work", model=Item, service=noop)
    async with (await sessions(runtime))() as session:
        with pytest.raises(curate.ConfigurationError, match=message):
            await curate.queue(session, work, 1, **options)


async def test_a_table_without_the_columns_says_which_column_is_missing(
    runtime: curate.Runtime,
) -> None:
    seed = Workflow(
        "seed",
        model=SeedItem,
        service=noop,
        columns=curate.ColumnNames(status="status", error="error"),
    )
    async with (await sessions(runtime))() as session:
        with pytest.raises(
            curate.ConfigurationError,
            match="no column 'seed_run_after', so items cannot be scheduled",
        ):
            await curate.queue(session, seed, 1, run_in=5)
        with pytest.raises(curate.ConfigurationError, match="cannot have a priority"):
            await curate.queue(session, seed, 1, priority=5)


class Curation(enum.StrEnum):
    New = "New"
    Selected = "Selected"
    Rejected = "Rejected"


@pytest.fixture
async def curated(engine: AsyncEngine) -> Any:
    """A table with a curation column and two workflows (``fetch``, ``index``)."""
    table = await create_table(
        engine,
        "articles",
        Column("id", Integer, primary_key=True),
        Column("curation_status", String(20), nullable=False, server_default="New"),
        *curate.workflow_columns("fetch"),
        *curate.workflow_columns("index"),
    )
    async with engine.begin() as conn:
        await conn.execute(insert(table), [{"id": i} for i in (1, 2, 3)])
    return table


async def test_dual_status_sets_the_value_and_queues_its_workflows_together(
    runtime: curate.Runtime, engine: AsyncEngine, curated: Any
) -> None:
    fetch = Workflow("fetch", model=curated, service=noop)
    index = Workflow("index", model=curated, service=noop)
    selection = DualStatus(curated.c.curation_status, {Curation.Selected: [fetch, index]})
    async with (await sessions(runtime))() as session, session.begin():
        await selection.set(session, [1, 2], Curation.Selected)
        await selection.set(session, [3], Curation.Rejected)  # queues nothing
    with pytest.raises(RuntimeError):
        async with (await sessions(runtime))() as session, session.begin():
            await selection.set(session, [3], Curation.Selected)
            raise RuntimeError("rolled back: neither write stands")

    async with engine.connect() as conn:
        rows = (await conn.execute(select(curated).order_by(curated.c.id))).all()
    assert [(r.curation_status, r.fetch_status, r.index_status) for r in rows] == [
        ("Selected", ProcessingStatus.Queued, ProcessingStatus.Queued),
        ("Selected", ProcessingStatus.Queued, ProcessingStatus.Queued),
        ("Rejected", None, None),
    ]


def test_dual_status_refuses_a_workflow_of_another_table(curated: Any) -> None:
    other = Workflow("work", model=Item, service=noop)
    with pytest.raises(curate.ConfigurationError, match="runs over table 'items'"):
        DualStatus(curated.c.curation_status, {Curation.Selected: other})
    with pytest.raises(curate.ConfigurationError, match="needs a table column"):
        DualStatus("curation_status", {Curation.Selected: other})


async def test_a_retrys_backoff_counts_from_the_frozen_clock(
    runtime: curate.Runtime, engine: AsyncEngine, frozen: datetime
) -> None:
    attempts: list[int] = []

    async def fails_once(item_id: int, session: AsyncSession) -> None:
        attempts.append(item_id)
        if len(attempts) == 1:
            raise RuntimeError("once")

    await insert_items(engine, 1)
    retry = curate.RetryPolicy(max_attempts=2, base_seconds=60, jitter=False)
    work = Workflow("work", model=Item, service=fails_once, retry=retry)
    assert (await work.run()).retried == 1
    assert (await item_row(engine, 1)).work_run_after == frozen + timedelta(seconds=60)
    clock.advance(59)
    assert (await work.run()).claimed == 0
    clock.advance(2)
    assert (await work.run()).completed == 1
