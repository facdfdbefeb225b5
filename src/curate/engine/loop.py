"""One run of one workflow: claim batches and execute their items until drained or over budget.

The next batch is claimed as soon as the last item of the previous one has started, so
``concurrency`` slots stay busy, while at most one batch waits claimed but unstarted.
A run stops claiming when a batch comes back short (the queue is drained), when its
budget of items or seconds is spent, or when ``stop`` is set (the process is shutting
down); claimed items that have not started go back to Queued at once.
While items are held, a heartbeat renews their leases. It never raises for what a
service or the database does: a lost connection is retried with backoff, then logged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from curate.db.schema_searched import where_undefined
from curate.engine.batched import CompletionBatch
from curate.engine.claim import claim_batch
from curate.engine.context import ClaimedItem, RunContext, RunResult
from curate.engine.controls import admit, give_back
from curate.engine.error_text import format_error
from curate.engine.executor import execute_item
from curate.engine.heartbeat import Heartbeat
from curate.engine.hooks import notify_observers
from curate.engine.outcome import Outcome, release_unstarted
from curate.engine.repeated_errors import log_error, log_recovery
from curate.logs import logger

_COUNTERS = {
    Outcome.COMPLETED: "completed",
    Outcome.FAILED: "failed",
    Outcome.RETRIED: "retried",
    Outcome.DROPPED: "dropped",
    Outcome.UNRECORDED: "unrecorded",
    Outcome.CANCELLED: "cancelled",
    Outcome.SNOOZED: "snoozed",
}


async def run_workflow(ctx: RunContext, stop: asyncio.Event | None = None) -> RunResult:
    """Claim and process items of ``ctx``'s workflow; return what was done."""
    stop = stop or asyncio.Event()
    result = RunResult(workflow=ctx.name)
    started = time.monotonic()
    heartbeat = Heartbeat(ctx)
    completions = (
        CompletionBatch(ctx, ctx.config.batch_size, heartbeat)
        if ctx.config.batched_outcomes
        else None
    )
    with logger.contextualize(workflow=ctx.name, worker=ctx.worker_id):
        async with heartbeat.beating():  # until the last waiting completion is written
            try:
                await _claim_and_execute(ctx, stop, result, started, heartbeat, completions)
            finally:
                if completions is not None:
                    await completions.flush()
                    result.completed += completions.completed
                    result.dropped += completions.dropped
                    result.unrecorded += completions.unrecorded
    result.elapsed_seconds = time.monotonic() - started
    if result.claimed:
        logger.bind(workflow=ctx.name).info(
            "run done: {} claimed, {} complete, {} failed, {} retried, {} dropped, {} cancelled,"
            " {} snoozed in {:.2f} s",
            result.claimed,
            result.completed,
            result.failed,
            result.retried,
            result.dropped,
            result.cancelled,
            result.snoozed,
            result.elapsed_seconds,
        )
    return result


async def _claim_and_execute(
    ctx: RunContext,
    stop: asyncio.Event,
    result: RunResult,
    started: float,
    heartbeat: Heartbeat,
    completions: CompletionBatch | None,
) -> None:
    """Claim batches and start their items until drained, over budget or stopped; return
    when every started item has finished."""
    deadline = started + ctx.config.run_max_seconds
    slots = _Slots(ctx.config.concurrency, stop)
    finished = asyncio.Event()
    running = _Running(slots, result, heartbeat, finished, completions)
    waking = asyncio.create_task(_wake_on_stop(slots, stop))
    try:
        async with asyncio.TaskGroup() as tasks:
            while not stop.is_set() and time.monotonic() < deadline:
                limit = min(ctx.config.batch_size, ctx.config.run_max_items - result.claimed)
                if limit <= 0:
                    break
                limit = await admit(ctx, limit, stop, deadline, result)  # pause, rate limit
                if limit == 0:
                    break
                batch = await _claim(ctx, limit, result)
                await give_back(ctx, limit - len(batch))
                result.claimed += len(batch)
                heartbeat.hold(batch)
                for index, item in enumerate(batch):
                    try:
                        got_slot = await slots.take()
                    except asyncio.CancelledError:
                        await _release(ctx, batch[index:], heartbeat)
                        raise
                    if not got_slot:
                        await _release(ctx, batch[index:], heartbeat)
                        result.claimed -= len(batch) - index
                        break
                    running.in_flight.add(item)
                    tasks.create_task(_execute(ctx, item, running))
                if len(batch) < limit and not await _unlocked_more(ctx, batch, running):
                    break
    finally:
        waking.cancel()  # the run is over: its stop matters no more


async def _unlocked_more(ctx: RunContext, batch: list[ClaimedItem], run: _Running) -> bool:
    """After a short batch: is it worth claiming again at once?

    Without a lock key, no: the queue is drained. With one, rows may be waiting only for
    their key's running row: claim again once keys come free, as waiting completions are
    written (their rows hold keys too) or an item finishes; stop once a claim finds
    nothing and nothing is running or waiting to be written.
    """
    if ctx.binding.lock_key is None:
        return False
    if run.completions is not None and await run.completions.flush():
        return True
    run.finished.clear()  # no await between this and the look at in_flight
    if run.in_flight:
        await run.finished.wait()
        return True
    return bool(batch)


class _Slots:
    """The run's free concurrency slots, which the claim loop waits for, or for ``stop``.

    It waits on one future of its own, woken as an item ends or ``stop`` is set: racing a
    semaphore against the stop event costs two futures and an `asyncio.wait` for every
    item once all slots are busy. Only the claim loop takes slots.
    """

    def __init__(self, count: int, stop: asyncio.Event) -> None:
        self._free = count
        self._stop = stop
        self._waiter: asyncio.Future[None] | None = None

    async def take(self) -> bool:
        """Wait for a free slot (True, the slot taken) or for ``stop`` (False, no slot)."""
        while not self._stop.is_set():
            if self._free:
                self._free -= 1
                return True
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return False

    def release(self) -> None:
        self._free += 1
        self.wake()

    def wake(self) -> None:
        """Let the waiting claim loop look again."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


async def _wake_on_stop(slots: _Slots, stop: asyncio.Event) -> None:
    await stop.wait()
    slots.wake()


async def _claim(ctx: RunContext, limit: int, result: RunResult) -> list[ClaimedItem]:
    started = time.monotonic()
    try:
        batch = await claim_batch(ctx, limit)
    except Exception as exc:
        message = format_error(exc) + await where_undefined(ctx.engine, exc)
        result.errors.append(message)
        log_error(
            ctx.engine, ctx.name, "claim", f"claim failed, the next run tries again: {message}"
        )
        return []
    log_recovery(ctx.engine, ctx.name, "claim")
    seconds = time.monotonic() - started
    notify_observers(ctx.observers, lambda o: o.claimed(ctx.name, len(batch), seconds))
    return batch


async def _release(ctx: RunContext, items: list[ClaimedItem], heartbeat: Heartbeat) -> None:
    await release_unstarted(ctx, items)
    heartbeat.let_go(items)


@dataclass(frozen=True)
class _Running:
    """What every item's task shares with its run (one per run)."""

    slots: _Slots
    result: RunResult
    heartbeat: Heartbeat
    finished: asyncio.Event
    completions: CompletionBatch | None
    in_flight: set[ClaimedItem] = field(default_factory=set)
    """Items whose task has been started and has not ended."""


async def _execute(ctx: RunContext, item: ClaimedItem, run: _Running) -> None:
    outcome = Outcome.UNRECORDED
    try:
        outcome = await execute_item(ctx, item, run.completions)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a defect in curate itself: log it, keep the run going
        logger.exception("unexpected error while processing item {}: {}", item.id, exc)
    finally:
        run.slots.release()
        run.in_flight.discard(item)
        if outcome is not Outcome.BATCHED:  # a waiting completion stays held until written
            run.heartbeat.let_go((item,))
        run.finished.set()
    counter = _COUNTERS.get(outcome)  # a batched completion is counted when written
    if counter is not None:
        setattr(run.result, counter, getattr(run.result, counter) + 1)
        if ctx.tally is not None:
            ctx.tally(ctx.name, counter, 1)
