"""Executing one claimed item: its own session and transaction, under a timeout.

The service gets a fresh `AsyncSession` it may use as it likes: open its own
``session.begin()``, commit itself, or leave the commit to curate, in which case its
writes and the Complete status commit together. Whatever it raises (even `SystemExit`)
becomes a recorded failure. Only the cancellation of the run itself (a shutdown past its
grace period) propagates, after the item is put back to Queued as a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from curate.engine.batched import CompletionBatch
from curate.engine.cancel import CancelledOnRequest, attempt_of
from curate.engine.context import ClaimedItem, RunContext
from curate.engine.error_text import format_error
from curate.engine.hooks import ItemEvent, around_item, report_error
from curate.engine.outcome import (
    Outcome,
    record_cancelled,
    record_failure,
    record_interrupted,
    record_snoozed,
    record_success,
)
from curate.errors import ItemTimeoutError, Snooze
from curate.logs import logger


async def execute_item(
    ctx: RunContext, item: ClaimedItem, completions: CompletionBatch | None = None
) -> Outcome:
    """Run the service for one item and record the outcome; never raises but cancellation.

    The item hooks (`curate.engine.hooks`) wrap both, and see the outcome; the error hooks
    hear of a failure once it is recorded. With ``completions`` (batched outcomes) a
    success is handed to it to be written later, with others.
    """
    with logger.contextualize(
        workflow=ctx.name, item_id=str(item.id), attempt=item.attempt, worker=ctx.worker_id
    ):
        if not ctx.item_hooks and not ctx.error_hooks:  # the common case: no event per item
            return await _execute(ctx, item, completions, None)
        event = ItemEvent(
            ctx.name, item.id, item.attempt, ctx.worker_id, trace_context=item.trace_context
        )
        async with around_item(ctx.item_hooks, event):
            return await _execute(ctx, item, completions, event)


async def _execute(
    ctx: RunContext,
    item: ClaimedItem,
    completions: CompletionBatch | None,
    event: ItemEvent | None,
) -> Outcome:
    session = ctx.spare_sessions.pop() if ctx.spare_sessions else ctx.sessionmaker()
    failure: BaseException | None = None
    started_at = datetime.now(UTC)
    try:
        try:
            await _call_service(ctx, item, session)
            if completions is None:
                outcome = await record_success(ctx, session, item, started_at)
            else:
                outcome = await completions.record(session, item, started_at)
        except CancelledOnRequest as cancelled:
            await _discard(session)
            outcome = await record_cancelled(ctx, item, cancelled.reason, started_at)
        except Snooze as snooze:
            await _discard(session)
            outcome = await record_snoozed(ctx, item, snooze, started_at)
        except BaseException as error:
            await _discard(session)
            if _run_is_cancelled(error):
                await _record_interrupted_despite_cancellation(ctx, item, started_at)
                raise
            outcome = await record_failure(ctx, item, error, started_at)
            failure = error
    finally:
        if await _close(session):
            ctx.spare_sessions.append(session)
    if event is not None:
        event.outcome = outcome
        if failure is not None:
            await report_error(ctx.error_hooks, event, failure)
    return outcome


async def _call_service(ctx: RunContext, item: ClaimedItem, session: AsyncSession) -> None:
    """Call the service under the timeout, cancellable on request while it runs (only
    then: a request that comes later leaves the outcome's write alone)."""
    services = ctx.services
    attempt = attempt_of(item.claim, item.id)
    asked, reason = services.take_request(attempt)
    if asked:  # asked before it started: it never starts
        raise CancelledOnRequest(reason)
    task = asyncio.current_task()
    assert task is not None
    deadline = asyncio.timeout(ctx.config.timeout_seconds)
    services.started(attempt, task)
    try:
        async with deadline:
            await ctx.service(item.id, session)
    except TimeoutError as error:
        if deadline.expired():  # ours, not a TimeoutError the service raised itself
            raise ItemTimeoutError(
                f"the service did not finish within {ctx.config.timeout_seconds:g} s"
            ) from error
        raise
    except asyncio.CancelledError:
        asked, reason = services.take_request(attempt)
        # Ours alone (not a shutdown's too): the task is no longer being cancelled.
        if asked and task.uncancel() == 0:
            raise CancelledOnRequest(reason) from None
        raise
    finally:
        services.ended(attempt)


async def _record_interrupted_despite_cancellation(
    ctx: RunContext, item: ClaimedItem, started_at: datetime
) -> None:
    """Put the item back to Queued even if we are cancelled again meanwhile: the run's
    TaskGroup, or an event loop that is ending (``asyncio.run`` cancels what is left),
    would otherwise cut the write off and leave the row Processing."""
    recording = asyncio.ensure_future(record_interrupted(ctx, item, started_at))
    while not recording.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(recording)


def _run_is_cancelled(error: BaseException) -> bool:
    """A CancelledError from the service itself is a failure; our own cancellation is not."""
    current = asyncio.current_task()
    return isinstance(error, asyncio.CancelledError) and (
        current is not None and current.cancelling() > 0
    )


async def _discard(session: AsyncSession) -> None:
    """Roll back the service's work; a broken connection is thrown away instead."""
    await _or_invalidate(session, session.rollback, "rollback")


async def _close(session: AsyncSession) -> bool:
    """Close the session; True if it closed cleanly (it can serve another item).

    A session outside a transaction holds no connection, so closing it (forgetting its
    objects) needs no I/O: done directly, without the greenlet `AsyncSession.close`
    starts, which cost a no-op item about a tenth of its CPU time.
    """
    if not session.in_transaction():
        session.sync_session.close()
        return True
    return await _or_invalidate(session, session.close, "closing the session")


async def _or_invalidate(
    session: AsyncSession, operation: Callable[[], Awaitable[None]], what: str
) -> bool:
    """Run ``operation`` (True); if the connection is broken, invalidate it instead of
    reusing it (False)."""
    try:
        await operation()
        return True
    except BaseException as exc:
        logger.debug("{} failed ({}); invalidating the connection", what, format_error(exc))
        try:
            await session.invalidate()
        except BaseException as again:
            logger.debug("invalidating the connection failed: {}", format_error(again))
        return False
