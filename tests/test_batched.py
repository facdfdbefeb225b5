"""Batched outcomes: completions written many at a time, fenced on each item's claim."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, RetryPolicy, Workflow
from tests.executions import ExecutionLog
from tests.helpers import (
    effects_per_item,
    insert_items,
    item_row,
    noop,
    status_counts,
    worker_runtimes,
)
from tests.models import Effect, Item, SeedItem


def batched(service: Any = noop, **options: Any) -> Workflow:
    return Workflow(
        "work", model=Item, service=service, outcomes="batched", batch_size=25, **options
    )


async def test_every_item_completes_and_is_counted(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 103)  # four full batches of completions and a short one
    result = await batched(concurrency=5).run()
    assert (result.claimed, result.completed, result.dropped) == (103, 103, 0)
    assert await status_counts(engine) == {"Complete": 103}
    row = await item_row(engine, 7)
    assert (row.work_claimed_by.partition("#")[0], row.work_lease_until, row.work_error) == (
        "test-worker",
        None,
        None,
    )


async def test_several_workers_run_each_item_once(
    settings: curate.CurateSettings, runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Three workers race over one table: one execution per item, not merely one outcome."""
    await insert_items(engine, 1_500)
    executions = ExecutionLog(Item, "work")
    flow = batched(executions.service(noop), concurrency=5)
    async with worker_runtimes(settings, 3) as workers:
        results = await asyncio.gather(*(flow.run(w) for w in workers))

    assert sum(r.completed for r in results) == 1_500
    assert await status_counts(engine) == {"Complete": 1_500}
    await executions.assert_once_each(range(1, 1_501))


async def test_what_the_service_leaves_open_is_committed(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    async def writes(item_id: int, session: AsyncSession) -> None:
        await session.execute(insert(Effect).values(item_id=item_id))

    await insert_items(engine, 30)
    await batched(writes).run()
    assert await effects_per_item(engine) == {i: 1 for i in range(1, 31)}
    assert await status_counts(engine) == {"Complete": 30}


async def test_a_row_whose_claim_was_lost_is_left_as_it_is(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Item 2 is re-queued by hand while it runs: its batched completion must not land."""

    async def requeue_two(item_id: int, session: AsyncSession) -> None:
        if item_id == 2:
            async with engine.begin() as other:
                await other.execute(
                    update(Item)
                    .where(Item.id == 2)
                    .values(work_status=ProcessingStatus.Queued, work_claimed_by=None)
                )

    await insert_items(engine, 5)
    result = await batched(requeue_two, run_max_items=5).run()
    assert (result.completed, result.dropped) == (4, 1)
    assert (await item_row(engine, 2)).work_status == ProcessingStatus.Queued


async def test_failures_are_still_written_one_by_one(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    async def odd_fails(item_id: int, session: AsyncSession) -> None:
        if item_id % 2:
            raise ValueError(f"odd {item_id}")

    await insert_items(engine, 6)
    result = await batched(odd_fails, retry=RetryPolicy(max_attempts=1)).run()
    assert (result.completed, result.failed) == (3, 3)
    assert (await item_row(engine, 3)).work_error == "ValueError: odd 3"


def test_batched_outcomes_need_the_claim_columns() -> None:
    seed = Workflow(
        "seed",
        model=SeedItem,
        service=noop,
        columns=curate.ColumnNames(status="status", error="error"),
        outcomes="batched",
    )
    with pytest.raises(curate.ConfigurationError, match="needs the columns 'seed_attempts'"):
        seed.run_config(seed.load_settings())
    with pytest.raises(curate.ConfigurationError, match="outcomes='sometimes' is invalid"):
        Workflow("work", model=Item, service=noop, outcomes="sometimes")  # type: ignore[arg-type]
