"""Stages: a service hands items to the next workflow in the same transaction as its own
outcome, so nothing is lost or doubled between stages, fan-out included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Column, ForeignKey, Integer, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, RetryPolicy, Workflow
from curate.engine.hooks import ItemEvent
from curate.engine.outcome import Outcome
from tests.helpers import create_table, noop

CHILDREN_PER_PARENT = 3


@pytest.fixture
async def tables(engine: AsyncEngine) -> tuple[Table, Table]:
    parents = await create_table(
        engine,
        "parents",
        Column("id", Integer, primary_key=True),
        *curate.workflow_columns("split"),
    )
    children = await create_table(
        engine,
        "children",
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("parent_id", Integer, ForeignKey(parents.c.id)),
        *curate.workflow_columns("handle"),
    )
    async with engine.begin() as conn:
        await conn.execute(
            insert(parents), [{"id": i, "split_status": ProcessingStatus.Queued} for i in (1, 2)]
        )
    return parents, children


def pipeline(tables: tuple[Table, Table], before_outcome: Any = None) -> tuple[Workflow, Workflow]:
    """``split`` fans each parent out into children and queues them for ``handle``."""
    parents, children = tables
    handle = Workflow("handle", model=children, service=noop, batch_size=50)

    async def split(parent_id: int, session: AsyncSession) -> None:
        created = await session.scalars(
            insert(children).returning(children.c.id),
            [{"parent_id": parent_id} for _ in range(CHILDREN_PER_PARENT)],
        )
        await curate.queue(session, handle, created.all())
        if before_outcome is not None:
            await before_outcome(parent_id, session)

    retry = RetryPolicy(max_attempts=3, base_seconds=0, jitter=False)
    return Workflow("split", model=parents, service=split, retry=retry), handle


async def children_by_status(engine: AsyncEngine, children: Table) -> dict[Any, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(children.c.handle_status, func.count()).group_by(children.c.handle_status)
        )
        return {status: count for status, count in rows}


async def test_fan_out_hands_every_child_to_the_next_stage(
    runtime: curate.Runtime, engine: AsyncEngine, tables: tuple[Table, Table]
) -> None:
    split, handle = pipeline(tables)
    assert (await split.run()).completed == 2
    assert await children_by_status(engine, tables[1]) == {ProcessingStatus.Queued: 6}
    assert (await handle.run()).completed == 6
    assert await children_by_status(engine, tables[1]) == {ProcessingStatus.Complete: 6}


async def test_a_failed_item_hands_nothing_on_and_its_retry_hands_on_once(
    runtime: curate.Runtime, engine: AsyncEngine, tables: tuple[Table, Table]
) -> None:
    failed_once: set[int] = set()

    async def fail_first_time(parent_id: int, session: AsyncSession) -> None:
        if parent_id not in failed_once:
            failed_once.add(parent_id)
            raise RuntimeError("after queueing the children")

    split, _ = pipeline(tables, fail_first_time)
    first = await split.run()
    assert first.retried == 2
    assert await children_by_status(engine, tables[1]) == {}  # rolled back with the failure
    assert (await split.run()).completed == 2
    assert await children_by_status(engine, tables[1]) == {ProcessingStatus.Queued: 6}


async def test_a_lost_claim_hands_nothing_on(
    runtime: curate.Runtime, engine: AsyncEngine, tables: tuple[Table, Table]
) -> None:
    """The parent is re-queued by hand while its first run works: that run's outcome is
    refused, and the children it created go with it."""
    parents, _ = tables
    requeued: set[int] = set()

    async def requeue_meanwhile(parent_id: int, session: AsyncSession) -> None:
        if parent_id not in requeued:
            requeued.add(parent_id)
            async with engine.begin() as other:  # someone else, in their own transaction
                await other.execute(
                    parents.update()
                    .where(parents.c.id == parent_id)
                    .values(split_status=ProcessingStatus.Queued, split_claimed_by=None)
                )

    outcomes: list[Outcome | None] = []

    @asynccontextmanager
    async def note_outcome(event: ItemEvent) -> AsyncIterator[None]:
        yield
        outcomes.append(event.outcome)

    runtime.add_item_hook(note_outcome)
    split, _ = pipeline(tables, requeue_meanwhile)
    await split.run()
    assert outcomes[:2] == [Outcome.DROPPED, Outcome.DROPPED]
    # The re-queued parents ran again in the same run (or run now); children exist once.
    await split.run()
    assert await children_by_status(engine, tables[1]) == {ProcessingStatus.Queued: 6}
