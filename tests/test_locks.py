"""Per-key locks: rows sharing a key run one at a time, in queue order, on every worker."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, String, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, RetryPolicy, Workflow
from curate.engine.binding import LockKey
from curate.testing import wait_until
from tests.executions import ExecutionLog
from tests.helpers import create_table, noop, status_counts
from tests.models import Effect, Item

Span = tuple[int, str, int, Any, Any]
"""item id, key, attempt, started, ended (database clock)."""


@pytest.fixture
async def spans(engine: AsyncEngine) -> Table:
    return await create_table(
        engine,
        "spans",
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("item_id", Integer),
        Column("key", String(100)),
        Column("attempt", Integer),
        Column("started", DateTime(timezone=True)),
        Column("ended", DateTime(timezone=True)),
    )


def recording(spans: Table, fail_first_attempt_of: frozenset[int] = frozenset()) -> Any:
    """A service that takes a little while and records when it ran (in a transaction of
    its own, so a failed attempt is recorded too)."""

    async def service(item_id: int, session: AsyncSession) -> None:
        started = await session.scalar(select(func.clock_timestamp()))
        item = await session.get_one(Item, item_id)
        await session.execute(text("SELECT pg_sleep(0.03)"))
        attempt = item.work_attempts
        async with session.bind.connect() as own:  # type: ignore[union-attr]
            span = {"item_id": item_id, "key": item.payload, "attempt": attempt}
            await own.execute(
                insert(spans).values(**span, started=started, ended=func.clock_timestamp())
            )
            await own.commit()
        if item_id in fail_first_attempt_of and attempt == 1:
            raise RuntimeError("first attempt fails")

    return service


def locked_work(service: Any, lock_key: LockKey = "payload", **options: Any) -> Workflow:
    return Workflow(
        "work",
        model=Item,
        service=service,
        lock_key=lock_key,
        batch_size=10,
        concurrency=4,
        retry=RetryPolicy(max_attempts=3, base_seconds=0.05, jitter=False),
        **options,
    )


async def queue_keys(engine: AsyncEngine, keys: list[str]) -> None:
    rows = [
        {"id": i, "payload": key, "work_status": ProcessingStatus.Queued}
        for i, key in enumerate(keys, start=1)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Item), rows)


async def read_spans(engine: AsyncEngine, spans: Table) -> list[Span]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                spans.c.item_id, spans.c.key, spans.c.attempt, spans.c.started, spans.c.ended
            ).order_by(spans.c.started)
        )
        return [tuple(row) for row in rows]


def by_key(recorded: list[Span]) -> dict[str, list[Span]]:
    grouped: dict[str, list[Span]] = defaultdict(list)
    for span in recorded:
        grouped[span[1]].append(span)
    return grouped


def overlapping(a: Span, b: Span) -> bool:
    return bool(a[3] < b[4] and b[3] < a[4])


async def test_rows_sharing_a_key_run_one_at_a_time_in_queue_order_across_workers(
    runtime: curate.Runtime, engine: AsyncEngine, spans: Table
) -> None:
    keys = ["a", "b", "c"] * 8  # 24 rows, three keys interleaved
    await queue_keys(engine, keys)
    executions = ExecutionLog(Item, "work")
    workflow = locked_work(executions.service(recording(spans)))
    other = curate.Runtime(runtime.settings.model_copy(update={"worker_id": "other-worker"}))
    try:
        # Two workers, four slots each: without the lock, same-key rows would overlap.
        await asyncio.gather(runtime.run(workflow), other.run(workflow))
        await asyncio.gather(runtime.run(workflow), other.run(workflow))  # anything left
    finally:
        await other.close()

    assert await status_counts(engine) == {"Complete": 24}
    await executions.assert_once_each(range(1, 25))
    recorded = await read_spans(engine, spans)
    assert len(recorded) == 24
    for key, runs in by_key(recorded).items():
        ids = [span[0] for span in runs]
        assert ids == sorted(ids), f"key {key} ran out of queue order: {ids}"
        for earlier, later in itertools.pairwise(runs):
            assert earlier[4] <= later[3], f"key {key}: {earlier[0]} and {later[0]} overlapped"
    # Other keys kept flowing: rows of different keys did run at the same time.
    assert any(overlapping(a, b) for a in recorded for b in recorded if a[1] != b[1])


async def test_a_retried_row_still_holds_its_key_so_order_is_kept(
    runtime: curate.Runtime, engine: AsyncEngine, spans: Table
) -> None:
    await queue_keys(engine, ["a", "a", "a", "b"])
    workflow = locked_work(recording(spans, fail_first_attempt_of=frozenset({1})))

    async def drained() -> bool:
        await runtime.run(workflow)
        return (await status_counts(engine)) == {"Complete": 4}

    await wait_until(drained, seconds=20, what="every row complete")

    runs = by_key(await read_spans(engine, spans))
    assert [(span[0], span[2]) for span in runs["a"]] == [(1, 1), (1, 2), (2, 1), (3, 1)]
    first_success = runs["a"][1]
    assert all(first_success[4] <= later[3] for later in runs["a"][2:])


async def test_an_expression_key_and_null_keys(
    runtime: curate.Runtime, engine: AsyncEngine, spans: Table
) -> None:
    # lower(payload) puts "A" and "a" under one key; nullif makes "" rows unlocked.
    await queue_keys(engine, ["A", "a", "", "", "", ""])
    workflow = locked_work(recording(spans), lock_key=func.nullif(func.lower(Item.payload), ""))
    await runtime.run(workflow)
    await runtime.run(workflow)

    assert await status_counts(engine) == {"Complete": 6}
    recorded = await read_spans(engine, spans)
    same_key = [span for span in recorded if span[1] in ("A", "a")]
    assert [span[0] for span in same_key] == [1, 2]
    assert same_key[0][4] <= same_key[1][3]
    unlocked = [span for span in recorded if span[1] == ""]
    assert any(overlapping(a, b) for a in unlocked for b in unlocked if a is not b)


@pytest.mark.parametrize(
    ("lock_key", "message"),
    [
        ("no_such_column", "is not a column of table 'items'"),
        (Effect.note, "may only use columns of 'items'"),
        (42, "neither a column name nor an SQL expression"),
    ],
)
def test_a_bad_lock_key_is_a_clear_error(lock_key: Any, message: str) -> None:
    workflow = Workflow("work", model=Item, service=noop, lock_key=lock_key)
    with pytest.raises(curate.ConfigurationError, match=message):
        _ = workflow.binding
