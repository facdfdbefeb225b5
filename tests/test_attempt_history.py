"""The attempt history on real PostgreSQL: every attempt recorded with its outcome, in the
outcome's own transaction; the batched completion and the rescue record theirs too; the
trim keeps the newest attempts per item and drops old ones; without the table, or with
the history off, outcomes are written as before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, RetryPolicy, Workflow, operations
from curate.db.own_tables import create_own_tables
from curate.engine import attempt_history
from tests.helpers import configured, insert_items, item_row, noop
from tests.models import Effect, Item


class Flaky:
    """Fails the first ``failures`` attempts of every item, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[int, int] = {}

    async def __call__(self, item_id: int, session: AsyncSession) -> None:
        self.calls[item_id] = self.calls.get(item_id, 0) + 1
        session.add(Effect(item_id=item_id, note="attempt"))
        if self.calls[item_id] <= self.failures:
            raise ConnectionResetError(f"upstream reset on item {item_id}")


@pytest.fixture
def settings(settings: curate.CurateSettings) -> curate.CurateSettings:
    """Every attempt recorded, completions too (the default records the others only)."""
    return settings.model_copy(update={"attempt_history": "all"})


def work(service: Any, **kwargs: Any) -> Workflow:
    return Workflow(
        "work",
        model=Item,
        service=service,
        retry=RetryPolicy(max_attempts=3, base_seconds=0.0, max_seconds=0.0),
        **kwargs,
    )


async def attempts_of(engine: AsyncEngine, workflow: Workflow, item_id: int) -> list[Any]:
    found = await operations.read_attempts(engine, workflow, item_id)
    assert found is not None
    return list(reversed(found))  # oldest first


async def test_each_attempt_is_recorded_with_its_outcome_and_error(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 2)
    workflow = work(Flaky(failures=2))
    harness = curate.testing.WorkflowHarness(runtime)
    await harness.drain(workflow)

    attempts = await attempts_of(engine, workflow, 1)
    assert [(a.attempt, a.outcome) for a in attempts] == [
        (1, "retried"),
        (2, "retried"),
        (3, "completed"),
    ]
    first = attempts[0]
    assert first.error == "ConnectionResetError: upstream reset on item 1"
    assert first.error_type == "ConnectionResetError"
    assert first.traceback is not None and "in __call__" in first.traceback
    assert first.worker == "test-worker"
    assert first.started_at is not None and first.started_at <= first.ended_at
    assert attempts[2].error is None and attempts[2].traceback is None
    # Item 2's history is its own.
    assert [a.outcome for a in await attempts_of(engine, workflow, 2)] == [
        "retried",
        "retried",
        "completed",
    ]


async def test_a_final_failure_and_a_service_that_writes_its_own_error(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    async def refuses(item_id: int, session: AsyncSession) -> None:
        if item_id == 1:
            raise curate.NonRetryableError("bad input")
        await session.execute(
            update(Item)
            .where(Item.id == item_id)
            .values(work_status=ProcessingStatus.Error, work_error="set by the service")
        )

    await insert_items(engine, 2)
    workflow = work(refuses)
    await curate.testing.WorkflowHarness(runtime).drain(workflow)

    [refused] = await attempts_of(engine, workflow, 1)
    assert (refused.outcome, refused.error_type) == ("failed", "curate.errors.NonRetryableError")
    [own] = await attempts_of(engine, workflow, 2)
    assert (own.outcome, own.error) == ("failed", "set by the service")


async def test_the_history_commits_with_the_outcome_or_not_at_all(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """A completion refused by the fence (the row was re-queued while the service ran)
    records no attempt; the row's next claim records its own."""
    await insert_items(engine, 1)

    async def requeued_meanwhile(item_id: int, session: AsyncSession) -> None:
        async with AsyncSession(engine) as other, other.begin():
            await workflow.queue(other, [item_id])

    workflow = work(requeued_meanwhile)
    await workflow.run()
    assert await attempts_of(engine, workflow, 1) == []
    workflow.service = noop
    await workflow.run()
    assert [a.outcome for a in await attempts_of(engine, workflow, 1)] == ["completed"]


async def test_batched_completions_record_their_attempts(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 5)
    workflow = work(noop, outcomes="batched", batch_size=5)
    await workflow.run()
    for item_id in range(1, 6):
        [done] = await attempts_of(engine, workflow, item_id)
        assert (done.outcome, done.attempt, done.worker) == ("completed", 1, "test-worker")
        assert done.started_at is not None and done.started_at <= done.ended_at


async def test_the_rescue_records_the_lost_attempt(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 2)
    async with engine.begin() as connection:
        await connection.execute(
            update(Item).values(
                work_status=ProcessingStatus.Processing,
                work_attempts=Item.id + 1,  # item 2 is on its last attempt
                work_claimed_by="gone#0",
                work_lease_until=text("now() - interval '1 minute'"),
            )
        )
    workflow = work(noop)
    runtime.register(workflow)
    assert await runtime.rescue() == 2
    [lost] = await attempts_of(engine, workflow, 1)
    assert (lost.outcome, lost.attempt, lost.started_at) == ("lease expired", 2, None)
    assert lost.error is not None and lost.error.startswith("LeaseExpired")
    [given_up] = await attempts_of(engine, workflow, 2)
    assert (given_up.outcome, given_up.attempt) == ("failed", 3)


async def test_the_trim_keeps_the_newest_per_item_and_drops_old_ones(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 2)
    workflow = work(Flaky(failures=2))
    await curate.testing.WorkflowHarness(runtime).drain(workflow)
    async with engine.begin() as connection:  # item 2's attempts are from long ago
        await connection.execute(
            text(
                "UPDATE curate_attempts SET ended_at = now() - interval '40 days'"
                " WHERE item_id = '2'"
            )
        )
    settings = runtime.settings.model_copy(update={"attempt_history_per_item": 2})
    assert await attempt_history.trim(engine, settings, timedelta(minutes=10)) == 4
    assert [a.attempt for a in await attempts_of(engine, workflow, 1)] == [2, 3]
    assert await attempts_of(engine, workflow, 2) == []
    # Nothing more to trim: the second pass deletes nothing.
    assert await attempt_history.trim(engine, settings, timedelta(minutes=10)) == 0


async def test_with_the_history_off_nothing_is_recorded(
    settings: curate.CurateSettings, engine: AsyncEngine
) -> None:
    async with configured(settings.model_copy(update={"attempt_history": "off"})) as runtime:
        await insert_items(runtime_engine := await runtime.database.engine(), 1)
        workflow = work(Flaky(failures=1))
        await curate.testing.WorkflowHarness(runtime).drain(workflow)
        assert (await item_row(runtime_engine, 1)).work_status == ProcessingStatus.Complete
        assert await attempts_of(runtime_engine, workflow, 1) == []


async def test_without_the_table_outcomes_are_written_and_it_is_said_once(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE curate_attempts"))
    await insert_items(engine, 2)
    workflow = work(Flaky(failures=1))
    await curate.testing.WorkflowHarness(runtime).drain(workflow)
    assert (await item_row(engine, 1)).work_status == ProcessingStatus.Complete
    assert await operations.read_attempts(engine, workflow, 1) is None
    said = [line for line in log_lines if "attempt history is not recorded" in line]
    assert len(said) == 1 and "curate db upgrade" in said[0]
    # A migration run meanwhile turns it on, without a restart.
    async with engine.begin() as connection:
        await create_own_tables(connection)
    async with engine.begin() as connection:
        await connection.execute(insert(Item).values(id=3, work_status=ProcessingStatus.Queued))
    await curate.testing.WorkflowHarness(runtime).drain(workflow)
    assert [a.outcome for a in await attempts_of(engine, workflow, 3)] == ["retried", "completed"]


async def test_by_default_only_the_attempts_that_did_not_complete_are_recorded(
    settings: curate.CurateSettings,
) -> None:
    """``failures``, the default: the retries and the final failure are there, a completion
    costs no row (the row's own status says it)."""
    default = settings.model_copy(update={"attempt_history": "failures"})
    async with configured(default) as runtime:
        engine = await runtime.database.engine()
        await insert_items(engine, 2)
        workflow = work(Flaky(failures=1))
        await curate.testing.WorkflowHarness(runtime).drain(workflow)
        assert [(await item_row(engine, i)).work_status for i in (1, 2)] == [
            ProcessingStatus.Complete
        ] * 2
        assert [a.outcome for a in await attempts_of(engine, workflow, 1)] == ["retried"]
        always_fails = work(Flaky(failures=10))
        async with engine.begin() as conn:
            await conn.execute(
                update(Item).values(work_status=ProcessingStatus.Queued, work_attempts=0)
            )
        await curate.testing.WorkflowHarness(runtime).drain(always_fails)
        assert [a.outcome for a in await attempts_of(engine, always_fails, 2)] == [
            "retried",
            "retried",
            "retried",
            "failed",
        ]
