"""`run_job_loop` with exactly the seed's keyword arguments, on the seed's minimal table."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import compat, run_job_loop
from tests.models import SeedChild, SeedItem, SeedStatus

Service = Callable[[uuid.UUID, AsyncSession], Awaitable[None]]


async def seed_rows(engine: AsyncEngine, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(insert(SeedItem), [{"id": i, "status": SeedStatus.queued} for i in ids])
    return ids


async def run_seed_loop(service: Service, batch_size: int = 10, **more: Any) -> curate.RunResult:
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
        **more,
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
    result = await run_seed_loop(service, batch_size=5, drain=True)
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


async def test_one_call_takes_one_batch_and_drain_takes_the_rest(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """As the SDK: one batch per scheduled call, sized for the app's rate limits."""
    await seed_rows(engine, 12)
    first = await run_seed_loop(leaves_the_commit_to_curate, batch_size=5)
    assert (first.claimed, first.completed) == (5, 5)
    assert Counter(status for status, _ in (await rows(engine)).values()) == {
        SeedStatus.complete: 5,
        SeedStatus.queued: 7,
    }
    rest = await run_seed_loop(leaves_the_commit_to_curate, batch_size=5, drain=True)
    assert (rest.claimed, rest.completed) == (7, 7)


async def test_a_service_that_writes_its_own_error_and_raises_counts_as_failed(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    """The seed's CRM services do it: record their own message, then re-raise for the log."""
    [item] = await seed_rows(engine, 1)

    async def records_then_raises(item_id: uuid.UUID, session: AsyncSession) -> None:
        row = await session.get_one(SeedItem, item_id)
        row.status, row.error = SeedStatus.error, "CRM said 429: retry tomorrow"
        await session.commit()
        raise RuntimeError("CRM said 429")

    result = await run_seed_loop(records_then_raises)
    assert (result.failed, result.dropped) == (1, 0)
    assert await rows(engine) == {item: (SeedStatus.error, "CRM said 429: retry tomorrow")}
    assert any("its own final status, which stands" in line for line in log_lines)
    assert any("Traceback" in line and "RuntimeError: CRM said 429" in line for line in log_lines)


async def test_no_per_item_timeout_unless_asked(
    runtime: curate.Runtime, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK never cancelled a service; curate does only with ``timeout_seconds``. The
    workflow settings of the environment do not reach this entry."""
    monkeypatch.setenv("SEED_ITEMS_STATUS_SCHEDULER_TIMEOUT_SECONDS", "0.05")
    [slow, timed] = await seed_rows(engine, 2)

    async def takes_a_while(item_id: uuid.UUID, session: AsyncSession) -> None:
        await asyncio.sleep(0.3)  # the work itself, longer than both timeouts

    await run_seed_loop(takes_a_while, where=SeedItem.id == slow)
    await run_seed_loop(takes_a_while, where=SeedItem.id == timed, timeout_seconds=0.1)
    assert await rows(engine) == {
        slow: (SeedStatus.complete, None),
        timed: (SeedStatus.error, "ItemTimeoutError: the service did not finish within 0.1 s"),
    }


class ContactService:
    """Built anew for every scheduled call, as the seed's job functions do."""

    def __init__(self) -> None:
        self.ran: list[uuid.UUID] = []

    async def process_single_contact(self, item_id: uuid.UUID, session: AsyncSession) -> bool:
        self.ran.append(item_id)
        return True


async def test_a_bound_method_of_a_new_object_each_call_reuses_one_workflow(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    ids = await seed_rows(engine, 6)
    compat._workflows.clear()
    services = [ContactService() for _ in range(3)]
    for service in services:
        await run_seed_loop(service.process_single_contact, batch_size=2)
    assert sorted(i for s in services for i in s.ran) == sorted(ids)
    assert all(len(service.ran) == 2 for service in services)  # each call, its own object
    assert len(compat._workflows) == 1


async def test_without_updated_at_or_order_by_column_items_run_in_primary_key_order(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    ids = await seed_rows(engine, 8)  # random UUIDs, inserted out of their order
    started: list[uuid.UUID] = []

    async def records(item_id: uuid.UUID, session: AsyncSession) -> None:
        started.append(item_id)

    await run_seed_loop(records, batch_size=8)
    assert started == sorted(ids)
