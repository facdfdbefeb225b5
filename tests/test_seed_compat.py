"""`run_job_loop` with exactly the seed's keyword arguments, on the seed's minimal table."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import run_job_loop
from tests.models import SeedChild, SeedItem, SeedStatus

Service = Callable[[uuid.UUID, AsyncSession], Awaitable[None]]


async def seed_rows(engine: AsyncEngine, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(insert(SeedItem), [{"id": i, "status": SeedStatus.queued} for i in ids])
    return ids


async def run_seed_loop(service: Service, batch_size: int = 10) -> curate.RunResult:
    return await run_job_loop(
        model=SeedItem,
        status_enum=SeedStatus,
        queued_status=SeedStatus.queued,
        processing_status=SeedStatus.processing,
        completed_status=SeedStatus.complete,
        failed_status=SeedStatus.error,
        processing_function=service,
        batch_size=batch_size,
        order_by_column=None,
        status_field_name="status",
        error_field_name="error",
    )


async def rows(engine: AsyncEngine) -> dict[uuid.UUID, tuple[SeedStatus, str | None]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(SeedItem.id, SeedItem.status, SeedItem.error))
        return {row.id: (row.status, row.error) for row in result}


async def children(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(SeedChild))).scalar_one()


async def opens_its_own_transaction(item_id: uuid.UUID, session: AsyncSession) -> None:
    async with session.begin():
        session.add(SeedChild(parent_id=item_id))


async def commits_itself(item_id: uuid.UUID, session: AsyncSession) -> None:
    session.add(SeedChild(parent_id=item_id))
    await session.commit()


async def leaves_the_commit_to_curate(item_id: uuid.UUID, session: AsyncSession) -> None:
    session.add(SeedChild(parent_id=item_id))


@pytest.mark.parametrize(
    "service", [opens_its_own_transaction, commits_itself, leaves_the_commit_to_curate]
)
async def test_each_session_style_completes_and_keeps_its_writes(
    runtime: curate.Runtime, engine: AsyncEngine, service: Service
) -> None:
    ids = await seed_rows(engine, 23)
    result = await run_seed_loop(service, batch_size=5)
    assert result.completed == 23
    assert await rows(engine) == dict.fromkeys(ids, (SeedStatus.complete, None))
    assert await children(engine) == 23


async def test_a_raising_service_leaves_the_failed_status_and_its_error(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    [bad, good] = await seed_rows(engine, 2)

    async def picky(item_id: uuid.UUID, session: AsyncSession) -> None:
        session.add(SeedChild(parent_id=item_id))
        if item_id == bad:
            raise ValueError("no sitemap at this URL")

    await run_seed_loop(picky)
    assert await rows(engine) == {
        bad: (SeedStatus.error, "ValueError: no sitemap at this URL"),
        good: (SeedStatus.complete, None),
    }
    assert await children(engine) == 1  # the failed item's write was rolled back


async def test_a_status_the_service_sets_itself_is_respected(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    [item] = await seed_rows(engine, 1)

    async def marks_its_own_error(item_id: uuid.UUID, session: AsyncSession) -> None:
        await session.execute(
            update(SeedItem)
            .where(SeedItem.id == item_id)
            .values(status=SeedStatus.error, error="handled: empty sitemap")
        )

    result = await run_seed_loop(marks_its_own_error)
    assert result.failed == 1
    assert await rows(engine) == {item: (SeedStatus.error, "handled: empty sitemap")}


async def test_a_previous_error_is_cleared_when_the_row_is_queued_again(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    [item] = await seed_rows(engine, 1)
    async with engine.begin() as conn:
        await conn.execute(update(SeedItem).values(error="old failure"))
    await run_seed_loop(leaves_the_commit_to_curate)
    assert await rows(engine) == {item: (SeedStatus.complete, None)}
