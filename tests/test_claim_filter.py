"""``Workflow(where=…)``: only rows matching the condition are claimed, in the claim itself."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, Workflow
from tests.models import Effect, Item


async def queue(engine: AsyncEngine, payloads: dict[int, str]) -> None:
    rows = [
        {"id": i, "payload": payload, "work_status": ProcessingStatus.Queued}
        for i, payload in payloads.items()
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Item), rows)


async def statuses(engine: AsyncEngine) -> dict[int, str]:
    async with engine.connect() as conn:
        result = await conn.execute(select(Item.id, Item.work_status).order_by(Item.id))  # type: ignore[attr-defined]
        return {row.id: row.work_status.value for row in result}


started: list[int] = []


async def recorded(item_id: int, session: AsyncSession) -> None:
    started.append(item_id)


@pytest.fixture(autouse=True)
def fresh_record() -> None:
    started.clear()


async def test_only_rows_matching_where_are_claimed(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await queue(engine, {1: "ready", 2: "later", 3: "ready"})
    workflow = Workflow("work", model=Item, service=recorded, where=Item.payload == "ready")

    result = await workflow.run()

    assert result.completed == 2
    assert sorted(started) == [1, 3]
    assert await statuses(engine) == {1: "Complete", 2: "Queued", 3: "Complete"}


async def test_where_may_compare_with_the_database_clock(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """The seed's retry filter: ``next_retry_at <= now()``, evaluated at each claim."""
    await queue(engine, {1: "a", 2: "b"})
    async with engine.begin() as conn:
        await conn.execute(
            Item.__table__.update()
            .where(Item.id == 2)
            .values(updated_at=func.now() + func.make_interval(0, 0, 0, 0, 1))
        )
    workflow = Workflow("work", model=Item, service=recorded, where=Item.updated_at <= func.now())

    await workflow.run()

    assert await statuses(engine) == {1: "Complete", 2: "Queued"}


async def test_rows_outside_where_hold_no_place_in_a_keys_queue(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Row 1 is ahead of row 2 in the key's queue but not the workflow's to claim: it must
    not hold row 2 back (a retried row inside the filter would, as per-key locks promise)."""
    await queue(engine, {1: "site-a", 2: "site-a"})
    workflow = Workflow(
        "work", model=Item, service=recorded, lock_key="payload", where=Item.id != 1
    )

    result = await workflow.run()

    assert (result.completed, started) == (1, [2])
    assert await statuses(engine) == {1: "Queued", 2: "Complete"}


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (Item.payload, "is not a boolean SQL expression"),
        ("payload = 'ready'", "is not a boolean SQL expression"),
        (Effect.note == "x", "may only use columns of 'items'"),
        (Item.payload.in_(select(Effect.note)), None),
    ],
)
def test_where_must_be_a_condition_on_the_table(where: Any, message: str | None) -> None:
    workflow = Workflow("work", model=Item, service=recorded, where=where)
    if message is None:  # a sub-select over another table is the user's to write
        assert workflow.binding.where is not None
        return
    with pytest.raises(curate.ConfigurationError, match=message):
        _ = workflow.binding
    accepted = Workflow("work", model=Item, service=recorded, where=Item.payload == "ready")
    assert accepted.binding.where is not None
