"""The engine on real PostgreSQL: claim, execute, record, retry, timeout, fencing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, String, Text, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, RetryPolicy, Workflow
from curate.engine.driver import driver_statement
from curate.engine.error_text import ERROR_MAX_LENGTH
from curate.testing import wait_until
from tests.executions import ExecutionLog
from tests.helpers import (
    create_table,
    effects_per_item,
    insert_items,
    item_row,
    noop,
    status_counts,
    worker_runtimes,
)
from tests.models import Effect, Item


async def record_effect(item_id: int, session: AsyncSession) -> None:
    """A transactional service: its write commits with the outcome or not at all."""
    session.add(Effect(item_id=item_id, note="done"))


def work(service=record_effect, **options) -> Workflow:  # type: ignore[no-untyped-def]
    options.setdefault("batch_size", 10)
    return Workflow("work", model=Item, service=service, **options)


async def test_completes_queued_items_with_their_writes(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 25)
    result = await work().run()

    assert (result.claimed, result.completed, result.failed) == (25, 25, 0)
    assert 0 < result.elapsed_seconds < 30
    assert await status_counts(engine) == {"Complete": 25}
    assert await effects_per_item(engine) == dict.fromkeys(range(1, 26), 1)
    row = await item_row(engine, 1)
    assert (row.work_attempts, row.work_claimed_by.partition("#")[0], row.work_lease_until) == (
        1,
        "test-worker",
        None,
    )


async def test_only_queued_rows_are_claimed(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    await insert_items(engine, 6, status=None)
    async with engine.begin() as conn:
        await conn.execute(
            update(Item).where(Item.id <= 2).values(work_status=ProcessingStatus.Queued)
        )
        await conn.execute(
            update(Item).where(Item.id == 3).values(work_status=ProcessingStatus.Error)
        )
    result = await work().run()
    assert result.claimed == 2
    assert await status_counts(engine) == {"Complete": 2, "Error": 1, "None": 3}


async def test_one_run_drains_many_batches(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    await insert_items(engine, 95)
    result = await work(batch_size=10, concurrency=3).run()
    assert result.claimed == 95
    assert await status_counts(engine) == {"Complete": 95}


async def test_run_stops_at_its_item_budget(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    await insert_items(engine, 30)
    result = await work(batch_size=10, run_max_items=15).run()
    assert result.claimed == 15
    assert await status_counts(engine) == {"Complete": 15, "Queued": 15}


async def test_items_run_in_order_of_the_order_column(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 12)
    seen: list[int] = []

    async def remember(item_id: int, session: AsyncSession) -> None:
        seen.append(item_id)

    await work(service=remember, batch_size=5).run()
    assert seen == list(range(1, 13))


async def test_failure_rolls_back_the_service_writes_and_records_the_error(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 3)

    async def half_done(item_id: int, session: AsyncSession) -> None:
        session.add(Effect(item_id=item_id, note="partial"))
        await session.flush()
        if item_id == 2:
            raise ValueError(f"bad input in item {item_id}")

    result = await work(service=half_done, retry=RetryPolicy(max_attempts=1)).run()

    assert (result.completed, result.failed) == (2, 1)
    row = await item_row(engine, 2)
    assert row.work_status is ProcessingStatus.Error
    assert row.work_error == "ValueError: bad input in item 2"
    assert await effects_per_item(engine) == {1: 1, 3: 1}


async def test_failed_items_are_retried_with_backoff_until_max_attempts(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 1)
    calls: list[int] = []

    async def always_fails(item_id: int, session: AsyncSession) -> None:
        calls.append(item_id)
        raise ConnectionError("remote end hung up")

    flow = work(service=always_fails, retry=RetryPolicy(max_attempts=3, base_seconds=60))
    before = datetime.now(UTC)
    first = await flow.run()
    assert first.retried == 1
    row = await item_row(engine, 1)
    assert row.work_status is ProcessingStatus.Queued
    assert row.work_error == "ConnectionError: remote end hung up"
    # jittered exponential backoff: attempt 1 waits between 30 and 60 s
    assert 29 <= (row.work_run_after - before).total_seconds() <= 61

    # Not due yet: the next run claims nothing.
    assert (await flow.run()).claimed == 0

    for expected_status in (ProcessingStatus.Queued, ProcessingStatus.Error):
        async with engine.begin() as conn:  # make the retry due now
            await conn.execute(update(Item).values(work_run_after=None))
        await flow.run()
        assert (await item_row(engine, 1)).work_status is expected_status

    row = await item_row(engine, 1)
    assert (row.work_attempts, len(calls)) == (3, 3)
    assert row.work_error == "ConnectionError: remote end hung up"


async def test_non_retryable_errors_fail_at_once(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 2)

    async def refuses(item_id: int, session: AsyncSession) -> None:
        if item_id == 1:
            raise curate.NonRetryableError("the sitemap is not XML")
        raise KeyError("missing")

    policy = RetryPolicy(max_attempts=5, base_seconds=0, non_retryable=(KeyError,))
    result = await work(service=refuses, retry=policy).run()
    assert (result.failed, result.retried) == (2, 0)
    assert (await item_row(engine, 1)).work_error == "NonRetryableError: the sitemap is not XML"
    assert (await item_row(engine, 2)).work_error == "KeyError: 'missing'"


async def test_a_hung_service_times_out(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    await insert_items(engine, 2)

    async def hangs_on_one(item_id: int, session: AsyncSession) -> None:
        if item_id == 1:
            await asyncio.Event().wait()
        session.add(Effect(item_id=item_id))

    flow = work(service=hangs_on_one, timeout_seconds=0.3, concurrency=2, retry=RetryPolicy(1))
    result = await asyncio.wait_for(flow.run(), timeout=10)
    assert (result.completed, result.failed) == (1, 1)
    row = await item_row(engine, 1)
    assert row.work_status is ProcessingStatus.Error
    assert row.work_error == "ItemTimeoutError: the service did not finish within 0.3 s"


async def test_concurrency_runs_items_side_by_side(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 8)
    in_flight = 0
    most = 0
    four_at_once = asyncio.Event()

    async def rendezvous(item_id: int, session: AsyncSession) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 4:
            four_at_once.set()
        await asyncio.wait_for(four_at_once.wait(), timeout=5)
        in_flight -= 1

    result = await work(service=rendezvous, concurrency=4, batch_size=3).run()
    assert result.completed == 8
    assert most == 4


async def test_service_exits_and_cancellations_are_failures_not_crashes(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 3)

    async def misbehaves(item_id: int, session: AsyncSession) -> None:
        if item_id == 1:
            raise SystemExit(3)
        if item_id == 2:
            raise asyncio.CancelledError()
        raise RuntimeError("nul\x00byte " + "x" * 10_000)

    result = await work(service=misbehaves, retry=RetryPolicy(max_attempts=1)).run()
    assert result.failed == 3
    assert (await item_row(engine, 1)).work_error == "SystemExit: 3"
    assert (await item_row(engine, 2)).work_error == "CancelledError"
    long_error = (await item_row(engine, 3)).work_error
    assert long_error.startswith("RuntimeError: nul\\x00byte xxx")
    assert len(long_error) == ERROR_MAX_LENGTH
    assert long_error.endswith("… [10026 characters in all, cut]")


async def test_a_stolen_claim_cannot_write_its_outcome(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """The row is taken over while the service runs: the old worker's writes roll back."""
    await insert_items(engine, 1)
    started = asyncio.Event()
    stolen = asyncio.Event()

    async def slow(item_id: int, session: AsyncSession) -> None:
        session.add(Effect(item_id=item_id, note="stale worker"))
        started.set()
        await stolen.wait()

    async def steal() -> None:
        await started.wait()
        async with engine.begin() as conn:  # as a rescuer plus another worker would
            await conn.execute(
                update(Item).values(
                    work_claimed_by="other-worker", work_attempts=Item.work_attempts + 1
                )
            )
        stolen.set()

    result, _ = await asyncio.gather(work(service=slow).run(), steal())

    assert (result.completed, result.dropped) == (0, 1)
    row = await item_row(engine, 1)
    assert (row.work_status, row.work_claimed_by, row.work_attempts) == (
        ProcessingStatus.Processing,
        "other-worker",
        2,
    )
    assert await effects_per_item(engine) == {}


async def test_a_stolen_claim_cannot_record_a_failure_either(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 1)

    async def fails_after_takeover(item_id: int, session: AsyncSession) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                update(Item).values(
                    work_status=ProcessingStatus.Complete, work_claimed_by="other-worker"
                )
            )
        raise RuntimeError("too late")

    result = await work(service=fails_after_takeover).run()
    assert result.dropped == 1
    row = await item_row(engine, 1)
    assert (row.work_status, row.work_error) == (ProcessingStatus.Complete, None)


async def test_several_loops_process_each_item_exactly_once(
    settings: curate.CurateSettings, runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Four workers (own runtimes, own worker ids, own pools) race over 3,000 rows: each
    service runs once per item, not merely each outcome is written once."""
    await insert_items(engine, 3_000)
    executions = ExecutionLog(Item, "work")
    flow = work(
        executions.service(record_effect), batch_size=50, concurrency=5, run_max_items=10_000
    )
    async with worker_runtimes(settings, 4) as workers:
        results = await asyncio.gather(*(flow.run(w) for w in workers))

    assert sum(r.completed for r in results) == 3_000
    assert all(r.completed > 0 for r in results), [r.completed for r in results]
    assert await status_counts(engine) == {"Complete": 3_000}
    await executions.assert_once_each(range(1, 3_001))
    effects = await effects_per_item(engine)
    assert len(effects) == 3_000
    assert set(effects.values()) == {1}


async def test_claim_is_served_by_the_partial_index(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """EXPLAIN the very statement and arguments the claim sends to PostgreSQL, on the
    table as the models make it (the mixin declares the index)."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(Item),
            [{"id": i, "work_status": ProcessingStatus.Complete} for i in range(1, 20_001)],
        )
        await conn.execute(text("ANALYZE items"))
    flow = work()
    assert (await flow.run()).claimed == 0
    # The SQL and arguments the driver is sent (curate.engine.driver), as sent.
    claim = driver_statement(flow.statements.claim, engine.dialect)
    params = flow.statements.claim_params("work", 10, "test-worker#1", timedelta(seconds=60))
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        rows = await driver.fetch("EXPLAIN " + claim.sql, *claim.arguments(params))
        plan = "\n".join(row[0] for row in rows)
    assert "ix_items_work_queued" in plan, plan


@pytest.mark.parametrize("status_column_type", ["enum", "string"])
async def test_string_and_enum_status_columns_both_work(
    runtime: curate.Runtime, engine: AsyncEngine, status_column_type: str
) -> None:
    status_type = (
        String(20) if status_column_type == "string" else Item.__table__.c.work_status.type
    )
    table = await create_table(
        engine,
        "plain",
        Column("id", Integer, primary_key=True),
        Column("work_status", status_type),
        Column("work_error", Text),
    )
    async with engine.begin() as conn:
        await conn.execute(insert(table), [{"id": 1, "work_status": "Queued"}])

    result = await Workflow("work", model=table, service=noop).run()
    assert result.completed == 1
    async with engine.connect() as conn:
        status = (await conn.execute(text("SELECT work_status::text FROM plain"))).scalar()
    assert status == "Complete"


async def test_run_stops_claiming_when_its_time_budget_is_spent(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 50)
    budget_over = asyncio.get_running_loop().time() + 0.3

    async def outlasts_the_budget(item_id: int, session: AsyncSession) -> None:
        async def over() -> bool:
            return asyncio.get_running_loop().time() > budget_over

        await wait_until(over, what="the run's time budget to pass")

    result = await work(service=outlasts_the_budget, batch_size=1, run_max_seconds=0.3).run()
    assert 1 <= result.claimed < 5
    counts = await status_counts(engine)
    assert counts == {"Complete": result.claimed, "Queued": 50 - result.claimed}


async def test_an_unreachable_database_is_logged_not_raised(
    settings: curate.CurateSettings,
) -> None:
    unreachable = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere"}
    )
    runtime = curate.configure(unreachable)
    result = await work().run()
    assert (result.claimed, len(result.errors)) == (0, 1)
    assert result.errors[0].startswith("ConnectionRefusedError")
    await runtime.database.dispose()


async def test_a_timeout_error_raised_by_the_service_is_not_called_ours(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 1)

    async def upstream_times_out(item_id: int, session: AsyncSession) -> None:
        raise TimeoutError("upstream API took too long")

    await work(service=upstream_times_out, retry=RetryPolicy(max_attempts=1)).run()
    assert (await item_row(engine, 1)).work_error == "TimeoutError: upstream API took too long"


async def test_queueing_a_running_row_fences_out_the_running_attempt(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Same worker, same row: the re-queued claim wins, the older run's outcome is dropped."""
    await insert_items(engine, 1)
    first_started = asyncio.Event()
    release_first = asyncio.Event()
    executions = ExecutionLog(Item, "work")

    async def service(item_id: int, session: AsyncSession) -> None:
        if not first_started.is_set():
            first_started.set()
            session.add(Effect(item_id=item_id, note="first"))
            await release_first.wait()
        else:
            session.add(Effect(item_id=item_id, note="second"))

    flow = work(service=executions.service(service))
    first = asyncio.create_task(flow.run())
    await first_started.wait()
    async with (await runtime.database.sessionmaker())() as session, session.begin():
        await flow.queue(session, [1])
    second = await flow.run()
    release_first.set()
    first_result = await first

    assert (second.completed, first_result.dropped) == (1, 1)
    row = await item_row(engine, 1)
    assert (row.work_status, row.work_attempts) == (ProcessingStatus.Complete, 2)
    async with engine.connect() as conn:
        notes = (await conn.execute(text("SELECT note FROM effects"))).scalars().all()
    assert notes == ["second"]
    # Two runs, one per claim: the first, then the re-queued row's.
    await executions.assert_runs_within({1: 2})
    assert [e.attempts for e in await executions.executions()] == [1, 2]
