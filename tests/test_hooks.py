"""The around-item hook and the observer, on real PostgreSQL."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, RetryPolicy, Workflow
from curate.engine.hooks import ItemEvent
from curate.engine.outcome import Outcome
from tests.helpers import insert_items, item_row, noop, status_counts
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

    def rescued(self, workflow: str, count: int, seconds: float) -> None:
        assert seconds >= 0
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


current_item: contextvars.ContextVar[Any] = contextvars.ContextVar("current_item", default=None)


async def test_hooks_nest_in_a_defined_order_and_share_context_with_the_service(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    trail: list[str] = []

    def named(name: str) -> Any:
        @asynccontextmanager
        async def hook(event: ItemEvent) -> AsyncIterator[None]:
            trail.append(f"{name} enter")
            token = current_item.set(f"{name}:{event.item_id}") if name == "outer" else None
            yield
            if token is not None:
                current_item.reset(token)
            trail.append(f"{name} exit")

        return hook

    async def service(item_id: int, session: AsyncSession) -> None:
        trail.append(f"service sees {current_item.get()}")

    runtime.add_item_hook(named("outer"))
    runtime.add_item_hook(named("inner"))
    workflow = Workflow("work", model=Item, service=service, item_hooks=[named("own")])
    await insert_items(engine, 1)
    await workflow.run()

    assert trail == [
        "outer enter",
        "inner enter",
        "own enter",
        "service sees outer:1",
        "own exit",
        "inner exit",
        "outer exit",
    ]


async def test_error_hooks_hear_each_failure_after_it_is_recorded_in_order(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    heard: list[tuple[str, Any, int, Outcome | None, str, str]] = []

    def reporter(name: str) -> Any:
        async def report(event: ItemEvent, error: BaseException) -> None:
            status = (await item_row(engine, event.item_id)).work_status
            heard.append((name, event.item_id, event.attempt, event.outcome, str(error), status))

        return report

    async def broken(event: ItemEvent, error: BaseException) -> None:
        raise RuntimeError("the error reporter itself is down")

    runtime.add_error_hook(reporter("first"))
    runtime.add_error_hook(broken)
    runtime.add_error_hook(reporter("second"))
    workflow = Workflow(
        "work",
        model=Item,
        service=fails_on_odd,
        retry=RetryPolicy(max_attempts=2, base_seconds=0, jitter=False),
    )
    await insert_items(engine, 2)
    await workflow.run()  # attempt 1 of item 1 fails and is queued again, due at once
    await workflow.run()  # attempt 2 fails for good

    queued, error = ProcessingStatus.Queued, ProcessingStatus.Error
    assert heard == [
        ("first", 1, 1, Outcome.RETRIED, "odd 1", queued),
        ("second", 1, 1, Outcome.RETRIED, "odd 1", queued),
        ("first", 1, 2, Outcome.FAILED, "odd 1", error),
        ("second", 1, 2, Outcome.FAILED, "odd 1", error),
    ]
    assert await status_counts(engine) == {"Complete": 1, "Error": 1}
