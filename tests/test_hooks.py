"""The around-item hook and the observer, on real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import RetryPolicy, Workflow
from curate.engine.hooks import ItemEvent
from curate.engine.outcome import Outcome
from tests.helpers import insert_items, noop, status_counts
from tests.models import Item


async def fails_on_odd(item_id: int, session: AsyncSession) -> None:
    if item_id % 2:
        raise ValueError(f"odd {item_id}")


def work(service: Any = fails_on_odd) -> Workflow:
    return Workflow(
        "work", model=Item, service=service, batch_size=10, retry=RetryPolicy(max_attempts=1)
    )


async def test_item_hook_wraps_the_service_and_sees_the_outcome(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    seen: list[tuple[str, str, Any, int, str, Outcome | None]] = []

    @asynccontextmanager
    async def hook(event: ItemEvent) -> AsyncIterator[None]:
        seen.append(("enter", event.workflow, event.item_id, event.attempt, event.worker_id, None))
        yield
        seen.append(("exit", event.workflow, event.item_id, event.attempt, "", event.outcome))

    runtime.add_item_hook(hook)
    await insert_items(engine, 4)
    await work().run()

    entries = sorted(e[2] for e in seen if e[0] == "enter")
    assert entries == [1, 2, 3, 4]
    assert {e[1:5] for e in seen if e[0] == "enter"} == {
        ("work", i, 1, "test-worker") for i in range(1, 5)
    }
    outcomes = {e[2]: e[5] for e in seen if e[0] == "exit"}
    assert outcomes == {
        1: Outcome.FAILED,
        2: Outcome.COMPLETED,
        3: Outcome.FAILED,
        4: Outcome.COMPLETED,
    }


async def test_a_failing_hook_does_not_break_the_run(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    @asynccontextmanager
    async def breaks_on_entry(event: ItemEvent) -> AsyncIterator[None]:
        raise RuntimeError("hook bug on entry")
        yield  # pragma: no cover

    @asynccontextmanager
    async def breaks_on_exit(event: ItemEvent) -> AsyncIterator[None]:
        yield
        raise RuntimeError("hook bug on exit")

    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    try:
        runtime.add_item_hook(breaks_on_entry)
        runtime.add_item_hook(breaks_on_exit)
        await insert_items(engine, 3)
        result = await work(service=noop).run()
    finally:
        logger.remove(sink)

    assert result.completed == 3
    assert await status_counts(engine) == {"Complete": 3}
    assert sum("failed on entry" in e for e in errors) == 3
    assert sum("failed on exit" in e for e in errors) == 3


class Recorder:
    def __init__(self) -> None:
        self.claims: list[tuple[str, int]] = []
        self.rescues: list[tuple[str, int]] = []

    def claimed(self, workflow: str, count: int, seconds: float) -> None:
        assert seconds >= 0
        self.claims.append((workflow, count))

    def rescued(self, workflow: str, count: int) -> None:
        self.rescues.append((workflow, count))


async def test_observer_hears_of_claims(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    recorder = Recorder()
    runtime.add_observer(recorder)
    await insert_items(engine, 15)
    await work(service=noop).run()
    assert recorder.claims == [("work", 10), ("work", 5)]


async def test_item_logs_carry_the_worker_id(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    extras: list[dict[str, Any]] = []
    sink = logger.add(lambda m: extras.append(dict(m.record["extra"])), level="WARNING")
    try:
        await insert_items(engine, 1)
        await work().run()
    finally:
        logger.remove(sink)
    failed = [e for e in extras if e.get("item_id") == "1"]
    assert failed
    assert failed[0]["worker"] == "test-worker"
    assert (failed[0]["workflow"], failed[0]["attempt"]) == ("work", 1)
