"""Healthy workers racing each other: no crash, yet nothing may run or be recorded twice.

Each test forces the interleaving that once let work through twice (events, a trigger that
holds a claim on a lock, a second connection) and counts service executions, not only
outcomes: the fence hides double work from a count of outcomes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    String,
    Table,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import DualStatus, ProcessingStatus, Workflow, operations, workflow_columns
from curate.engine import context as engine_context
from curate.engine.claim import claim_batch
from curate.engine.config import RunConfig
from curate.engine.context import RunResult
from curate.engine.rescuer import rescue_expired
from curate.sql import RequeueSelection
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

pytestmark = pytest.mark.faults

Queued, Processing = ProcessingStatus.Queued, ProcessingStatus.Processing

LEASE_SECONDS = 1.0
SHORT_LEASE = {"lease_seconds": LEASE_SECONDS, "heartbeat_seconds": 0.2}
"""A lease that lapses within a test unless the heartbeat renews it."""


def work(service: Any, **options: Any) -> Workflow:
    options.setdefault("batch_size", 10)
    return Workflow("work", model=Item, service=service, **options)


async def db_seconds_pass(engine: AsyncEngine, seconds: float) -> None:
    """Return once ``seconds`` have passed on the database's clock (what leases count)."""
    async with engine.connect() as conn:
        start = await conn.scalar(select(func.clock_timestamp()))

    async def passed() -> bool:
        async with engine.connect() as conn:
            now = await conn.scalar(select(func.clock_timestamp()))
        return bool(now - start >= timedelta(seconds=seconds))

    await wait_until(passed, seconds=seconds + 10, what=f"{seconds} s on the database clock")


async def run_beside_a_rescuer(runtime: curate.Runtime, flow: Workflow) -> tuple[RunResult, int]:
    """One run of ``flow``, while another worker's rescuer runs as often as it can: the
    run's result, and how many rows the rescuer took (never one of a live worker's)."""
    ctx = await runtime.context(flow)
    run = asyncio.create_task(runtime.run(flow))
    rescued = 0
    while not run.done():
        rescued += len(await rescue_expired(ctx) or [])
        await asyncio.sleep(0.05)
    return await run, rescued


# --- 1. the fence is unique per claim ------------------------------------------------------


async def test_a_stalled_run_is_fenced_out_after_the_row_is_requeued_and_claimed_again_by_its_own_worker(  # noqa: E501
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Rescued from a stalled run, re-queued (attempts back to 0), claimed again by the
    same worker: the second claim has the first one's worker and attempt number, yet the
    stalled run's outcome and writes must be refused."""
    await insert_items(engine, 1)
    executions = ExecutionLog(Item, "work")
    stalled, wake_up = asyncio.Event(), asyncio.Event()

    async def service(item_id: int, session: AsyncSession) -> None:
        session.add(Effect(item_id=item_id, note="run"))
        if not stalled.is_set():
            stalled.set()
            await wake_up.wait()

    flow = work(executions.service(service))
    no_heartbeat = RunConfig(lease_seconds=0.3, heartbeat_seconds=60)
    first = asyncio.create_task(runtime.run(flow, no_heartbeat))
    await stalled.wait()
    ctx = await runtime.context(flow)

    async def rescued() -> bool:
        return bool(await rescue_expired(ctx))

    await wait_until(rescued, seconds=10, what="the stalled row to be rescued")
    assert await operations.requeue(engine, flow, RequeueSelection(ids=(1,))) == 1
    assert (await item_row(engine, 1)).work_attempts == 0
    second = await runtime.run(flow)
    wake_up.set()
    stalled_result = await first

    assert (second.completed, stalled_result.completed, stalled_result.dropped) == (1, 0, 1)
    assert await effects_per_item(engine) == {1: 1}
    runs = await executions.executions()
    assert [(run.worker, run.attempts) for run in runs] == [("test-worker", 1)] * 2
    assert runs[0].claimed_by != runs[1].claimed_by  # the claims differ all the same
    await executions.assert_runs_within({1: 2})


# --- 2. held per claim, not per id -----------------------------------------------------------


async def test_a_row_claimed_again_by_the_same_run_keeps_its_lease_after_the_first_claim_ends(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Row 1 is queued again while it runs, and the same run claims it again. When the
    first execution ends, the second one's lease must still be renewed: a rescuer that
    looks after the lease would have lapsed finds nothing, and row 1 runs twice, not
    three times."""
    await insert_items(engine, 6)
    executions = ExecutionLog(Item, "work")
    requeued, second_started = asyncio.Event(), asyncio.Event()
    starts: list[int] = []
    flow: Workflow

    async def service(item_id: int, session: AsyncSession) -> None:
        if item_id != 1:  # the slots free up, and the run claims again, after the requeue
            await requeued.wait()
            return
        starts.append(item_id)
        if len(starts) == 1:  # the first execution: queue the row again, wait for the second
            async with (await runtime.database.sessionmaker())() as other, other.begin():
                await flow.queue(other, [1])
            requeued.set()
            await second_started.wait()
            return
        second_started.set()  # the second: outlive the lease of its claim, twice over
        await db_seconds_pass(engine, 2 * LEASE_SECONDS)

    flow = work(executions.service(service), batch_size=2, concurrency=2, **SHORT_LEASE)
    result, rescued = await run_beside_a_rescuer(runtime, flow)

    assert rescued == 0
    assert await status_counts(engine) == {"Complete": 6}
    assert (result.completed, result.dropped) == (6, 1)  # the first claim of row 1: refused
    await executions.assert_runs_within({1: 2, **dict.fromkeys(range(2, 7), 1)})
    assert (await executions.counts())[1] == 2


# --- 3. batched completions stay held until written --------------------------------------


async def test_batched_completions_keep_their_leases_until_written(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Items finish one by one while their completions wait for the batch to fill, longer
    than the lease: a rescuer must find nothing, and each item runs once."""
    await insert_items(engine, 8)
    executions = ExecutionLog(Item, "work")

    async def slow(item_id: int, session: AsyncSession) -> None:
        await db_seconds_pass(engine, 0.3)  # 8 x 0.3 s in a row: the first waits 2.1 s

    flow = work(
        executions.service(slow), outcomes="batched", batch_size=8, concurrency=1, **SHORT_LEASE
    )
    result, rescued = await run_beside_a_rescuer(runtime, flow)

    assert rescued == 0
    assert (result.completed, result.dropped) == (8, 0)
    assert await status_counts(engine) == {"Complete": 8}
    await executions.assert_once_each(range(1, 9))


# --- 4. the heartbeat never waits behind a row lock ----------------------------------------


async def test_a_service_holding_its_row_locked_does_not_stop_the_other_leases_renewing(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    """Item 1's service writes to its own row and keeps the transaction open past the
    lease; item 2 runs as long. The heartbeat must renew item 2 (and say it could not
    renew item 1), and no rescuer may take either."""
    await insert_items(engine, 2)
    executions = ExecutionLog(Item, "work")

    async def service(item_id: int, session: AsyncSession) -> None:
        if item_id == 1:
            await session.execute(update(Item).where(Item.id == 1).values(payload="written"))
        await db_seconds_pass(engine, 2.5 * LEASE_SECONDS)

    flow = work(executions.service(service), concurrency=2, **SHORT_LEASE)
    result, rescued = await run_beside_a_rescuer(runtime, flow)

    assert rescued == 0
    assert (result.completed, result.dropped) == (2, 0)
    assert (await item_row(engine, 1)).payload == "written"
    await executions.assert_once_each([1, 2])
    assert any("could not renew the lease of 1 item(s) [1]" in line for line in log_lines)


# --- 5. per-key locks ----------------------------------------------------------------------

KEYED = "keyed"


async def keyed_table(engine: AsyncEngine, *extra: Column[Any]) -> Table:
    return await create_table(
        engine,
        KEYED,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("site", String(50)),
        Column("queued_at", DateTime(timezone=True), nullable=True),
        *extra,
        *workflow_columns("job"),
    )


def keyed_flow(table: Table, service: Any = None, **options: Any) -> Workflow:
    async def nothing(item_id: Any, session: AsyncSession) -> None:
        pass

    return Workflow(
        "job",
        model=table,
        service=service or nothing,
        lock_key="site",
        order_by=table.c.queued_at,
        **options,
    )


async def test_a_null_order_value_does_not_let_two_rows_of_a_key_run_together(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """NULL sorts last, as in the claim's ORDER BY; ties go by id."""
    table = await keyed_table(engine)
    async with engine.begin() as conn:
        await conn.execute(
            insert(table),
            [
                {"id": 1, "site": "a", "queued_at": None, "job_status": Queued},
                {"id": 2, "site": "a", "queued_at": None, "job_status": Queued},
                {"id": 3, "site": "b", "queued_at": None, "job_status": Queued},
                {"id": 4, "site": "b", "queued_at": datetime.now(UTC), "job_status": Queued},
                {"id": 5, "site": "c", "queued_at": datetime.now(UTC), "job_status": Queued},
            ],
        )
    ctx = await runtime.context(keyed_flow(table))
    claimed = await claim_batch(ctx, 10)
    # a: the lower id of two NULLs; b: the row with a time, ahead of the NULL; c: alone
    assert sorted(item.id for item in claimed) == [1, 4, 5]


async def test_rows_of_a_key_committed_out_of_order_never_run_together(
    runtime: curate.Runtime, engine: AsyncEngine, settings: curate.CurateSettings
) -> None:
    """Row 2 commits before row 1 (two producers). Claim X takes row 2 and is held, by
    a trigger, before it commits; then row 1 commits and claim Y runs. Y must not take
    row 1 while X holds row 2 of the same key."""
    table = await keyed_table(engine)
    hold = 7_070_707
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"""
                CREATE FUNCTION hold_claim_of_row_2() RETURNS trigger AS $$
                BEGIN
                    IF NEW.id = 2 AND NEW.job_status::text = 'Processing' THEN
                        PERFORM pg_advisory_lock({hold});
                        PERFORM pg_advisory_unlock({hold});
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql
                """
            )
        )
        await conn.execute(
            text(
                f"CREATE TRIGGER hold_claim BEFORE UPDATE ON {KEYED}"
                " FOR EACH ROW EXECUTE FUNCTION hold_claim_of_row_2()"
            )
        )
    flow = keyed_flow(table)
    row = {"site": "a", "queued_at": None, "job_status": Queued}
    async with worker_runtimes(settings, 1) as [worker_y]:
        ctx_x, ctx_y = await runtime.context(flow), await worker_y.context(flow)
        async with engine.connect() as producer_1, engine.connect() as holder:
            await holder.execute(select(func.pg_advisory_lock(hold)))
            await producer_1.execute(insert(table).values(id=1, **row))  # not committed yet
            async with engine.begin() as producer_2:
                await producer_2.execute(insert(table).values(id=2, **row))
            claim_x = asyncio.create_task(claim_batch(ctx_x, 10))
            await wait_until(
                lambda: advisory_waiters(engine, 1), what="claim X to hold row 2, uncommitted"
            )
            await producer_1.commit()
            claim_y = asyncio.create_task(claim_batch(ctx_y, 10))

            async def y_done_or_waiting() -> bool:
                return claim_y.done() or await advisory_waiters(engine, 2)

            await wait_until(y_done_or_waiting, what="claim Y to finish or to wait for X")
            await holder.execute(select(func.pg_advisory_unlock(hold)))
            claimed_x, claimed_y = await claim_x, await claim_y

    assert ([i.id for i in claimed_x], [i.id for i in claimed_y]) == ([2], [])
    async with engine.connect() as conn:
        statuses = dict((await conn.execute(select(table.c.id, table.c.job_status))).all())
    assert statuses == {1: Queued, 2: Processing}


async def advisory_waiters(engine: AsyncEngine, count: int) -> bool:
    """At least ``count`` sessions wait for an advisory lock."""
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
    return bool(waiting >= count)


# --- 8. the smaller holes ------------------------------------------------------------------


async def test_more_ids_than_a_statement_has_parameters_queue_in_one_call(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """asyncpg allows 32,767 parameters; an IN list needs one per id."""
    count = 40_000
    await insert_items(engine, count, status=None)
    flow = work(noop)
    dual = DualStatus(Item.payload, {"picked": flow})
    ids = list(range(1, count + 1))
    sessions = await runtime.database.sessionmaker()
    async with sessions() as session, session.begin():
        await flow.queue(session, ids)
    assert await status_counts(engine) == {"Queued": count}
    async with sessions() as session, session.begin():
        await dual.set(session, ids, "picked")
    async with engine.connect() as conn:
        picked = await conn.scalar(select(func.count()).where(Item.payload == "picked"))
    assert picked == count


async def test_a_claim_whose_reply_was_lost_is_taken_up_by_its_retry(
    runtime: curate.Runtime, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim commits, then the connection drops before the reply arrives. The retry
    must pick up the rows that claim took, not leave them Processing and claim others."""
    await insert_items(engine, 5)
    executions = ExecutionLog(Item, "work")
    flow = work(executions.service(lambda item_id, session: asyncio.sleep(0)))
    real = engine_context.execute_alone
    lost: list[Any] = []

    async def reply_lost_once(
        engine: AsyncEngine, statement: Any, params: Any, cancel_after: float | None
    ) -> Any:
        rows = await real(engine, statement, params, cancel_after)
        if statement is flow.statements.claim and not lost:
            lost.extend(rows)
            raise ConnectionResetError("connection lost after the claim committed")
        return rows

    monkeypatch.setattr(engine_context, "execute_alone", reply_lost_once)
    result = await runtime.run(flow)

    assert len(lost) == 5
    assert (result.claimed, result.completed) == (5, 5)
    assert await status_counts(engine) == {"Complete": 5}
    assert {(await item_row(engine, i)).work_attempts for i in range(1, 6)} == {1}
    await executions.assert_once_each(range(1, 6))


async def test_a_null_priority_runs_after_every_set_priority(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """PostgreSQL's DESC sorts NULLs first; a row without a priority is not the most urgent."""
    columns = [c for c in workflow_columns("job") if c.name != "job_priority"]
    table = await create_table(
        engine,
        "prioritised",
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("job_priority", Integer, nullable=True),
        *columns,
    )
    async with engine.begin() as conn:
        await conn.execute(
            insert(table),
            [
                {"id": 1, "job_priority": None, "job_status": Queued},
                {"id": 2, "job_priority": 0, "job_status": Queued},
                {"id": 3, "job_priority": 5, "job_status": Queued},
                {"id": 4, "job_priority": -1, "job_status": Queued},
            ],
        )
    flow = Workflow("job", model=table, service=noop)
    ctx = await runtime.context(flow)
    assert [item.id for item in await claim_batch(ctx, 10)] == [3, 2, 4, 1]


async def test_rows_without_a_status_are_counted(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 3, status=None)
    async with engine.begin() as conn:
        await conn.execute(update(Item).where(Item.id == 1).values(work_status=Queued))
    [status] = (await operations.read_status(engine, [work(noop)])).workflows
    assert (status.counts["queued"], status.counts["unset"], status.counts["other"]) == (1, 2, 0)


async def test_a_locked_workflow_with_batched_outcomes_drains_in_one_run(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """A waiting completion holds its row's key: the run writes the waiting completions
    before it waits for a key to come free, so the next row of each key runs in the same
    run, once."""
    await insert_items(engine, 6)
    async with engine.begin() as conn:  # keys a, b, a, b, a, b
        await conn.execute(update(Item).values(payload=func.chr(97 + Item.id % 2)))
    executions = ExecutionLog(Item, "work")
    flow = work(executions.service(noop), lock_key="payload", outcomes="batched", concurrency=2)
    result = await runtime.run(flow)

    assert (result.claimed, result.completed) == (6, 6)
    assert await status_counts(engine) == {"Complete": 6}
    await executions.assert_once_each(range(1, 7))
