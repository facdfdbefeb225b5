"""Recording outcomes: every write is fenced on this worker's claim.

A worker that lost its claim (the row was rescued, re-queued or claimed again elsewhere)
finds no row to update: its transaction rolls back and the newer state stands.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from curate.clock import clock
from curate.engine.backoff import retry_on_connection_loss
from curate.engine.context import ClaimedItem, RunContext
from curate.engine.error_text import format_error
from curate.engine.repeated_errors import log_error, log_recovery
from curate.errors import NonRetryableError, Snooze, SnoozeLimitError
from curate.logs import logger
from curate.sql import history


class Outcome(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    RETRIED = "retried"
    DROPPED = "dropped"
    """The claim was lost; nothing was written."""
    UNRECORDED = "unrecorded"
    """The database refused the write; the row stays Processing until it is rescued."""
    BATCHED = "batched"
    """Done; its completion is written later, with others (`curate.engine.batched`)."""
    CANCELLED = "cancelled"
    """Cancelled on request while it ran (`curate.engine.cancel`)."""
    SNOOZED = "snoozed"
    """The service snoozed (`curate.Snooze`): queued again for later, no attempt spent."""


async def record_success(
    ctx: RunContext, session: AsyncSession, item: ClaimedItem, started_at: datetime
) -> Outcome:
    """Mark the item complete in the service's own transaction, then commit both together
    (with the attempt's record, where the history is kept).

    A service that left no transaction open (it wrote nothing, or committed itself) has
    nothing to commit with the outcome: the fenced update then runs as its own
    transaction, which saves the BEGIN and COMMIT round trips.
    """
    params = ctx.statements.complete_params(item.id, item.claim, item.attempt)
    if ctx.statements.records_completions:  # else the per-item path builds no more
        params.update(ctx.attempt_params(started_at))
    if session.in_transaction():
        # The statement limits are not set here (a SET LOCAL costs a round trip per item):
        # behind a lock, the row's own UPDATE waits as the service's statements do.
        row: Any = (await session.execute(ctx.statements.complete, params)).first()
        if row is None:
            await session.rollback()
        else:
            await session.commit()
    else:
        rows = await ctx.execute_alone(ctx.statements.complete, params)
        row = rows[0] if rows else None
    if row is None:
        return _claim_lost("outcome")
    # A service may set a final status itself (seed style); that status stands.
    failed_by_service = row.status == ctx.binding.status_value(ctx.binding.statuses.failed)
    return Outcome.FAILED if failed_by_service else Outcome.COMPLETED


async def record_failure(
    ctx: RunContext,
    item: ClaimedItem,
    error: BaseException,
    started_at: datetime,
    delay_seconds: float | None = None,
) -> Outcome:
    """In a fresh transaction: re-queue with backoff (or after ``delay_seconds``), or mark
    the item failed for good."""
    policy = ctx.config.retry
    retry = ctx.binding.can_retry and policy.should_retry(error, item.attempt)
    message = format_error(error)
    delay = None
    if retry:
        delay = delay_seconds if delay_seconds is not None else policy.delay_seconds(item.attempt)
    attempt = ctx.attempt_params(started_at, history.RETRIED if retry else history.FAILED, error)
    statuses = ctx.binding.statuses
    to_status = statuses.queued if retry else statuses.failed
    refused = await _write_failure(
        ctx, item, message, attempt, to_status=to_status, delay_seconds=delay
    )
    if refused is Outcome.DROPPED:
        refused = await _status_set_by_service(ctx, item, error) or _claim_lost("failure")
    if refused is not None:
        return refused
    if retry:
        logger.warning("failed, retry in {:.1f} s: {}", delay, message)
        logger.opt(exception=error).debug("where the attempt failed")
        return Outcome.RETRIED
    # A NonRetryableError is the service's own verdict (as Celery's expected exceptions):
    # its message says it all. Anything else may be a bug: where it happened goes along.
    expected = isinstance(error, NonRetryableError)
    logger.opt(exception=None if expected else error).error("failed: {}", message)
    return Outcome.FAILED


async def _status_set_by_service(
    ctx: RunContext, item: ClaimedItem, error: BaseException
) -> Outcome | None:
    """A service that set a final status itself and then raised (seed style: write Error
    with its own message, re-raise for the log): that status stands, and the item counts
    as what it says. None when the row is not ours in a final status (the claim was lost).
    """
    b = ctx.binding
    try:
        rows = await ctx.execute_alone(
            ctx.statements.item_state, ctx.statements.item_state_params(item.id)
        )
    except Exception as exc:
        logger.debug("could not read the row the service left: {}", format_error(exc))
        return None
    row = rows[0] if rows else None
    if row is None or (b.claimed_by is not None and row.claimed_by != item.claim):
        return None
    final = {
        b.status_value(b.statuses.failed): Outcome.FAILED,
        b.status_value(b.statuses.complete): Outcome.COMPLETED,
    }.get(row.status)
    if final is not None:
        logger.opt(exception=error).error(
            "raised after setting its own final status, which stands ({}): {}",
            row.status.name if isinstance(row.status, enum.Enum) else row.status,
            format_error(error),
        )
    return final


async def record_interrupted(ctx: RunContext, item: ClaimedItem, started_at: datetime) -> Outcome:
    """The run was cancelled (shutdown past its grace period): back to Queued, due now."""
    message = "Interrupted: the worker shut down while the item ran"
    attempt = ctx.attempt_params(started_at, history.INTERRUPTED)
    queued = ctx.binding.statuses.queued
    refused = await _write_failure(ctx, item, message, attempt, to_status=queued, delay_seconds=0.0)
    if refused is Outcome.DROPPED:
        return _claim_lost("interruption")
    if refused is not None:
        return refused
    logger.warning("interrupted by shutdown; queued again")
    return Outcome.RETRIED


async def record_snoozed(
    ctx: RunContext, item: ClaimedItem, snooze: Snooze, started_at: datetime
) -> Outcome:
    """The service snoozed: back to Queued after the delay, the attempt given back (fenced
    on the claim). Past ``max_snoozes``, or without the snoozes column, the snooze spends
    the attempt as a failure (`SnoozeLimitError`) retried after the same delay."""
    statement = ctx.statements.snooze
    if statement is not None:
        params = {
            **ctx.statements.snooze_params(
                item.id,
                item.claim,
                item.attempt,
                delay_seconds=snooze.seconds,
                max_snoozes=ctx.config.max_snoozes,
                now=clock.now_override(),
            ),
            **ctx.attempt_params(started_at, history.SNOOZED),
        }

        async def write() -> list[Any]:
            return await ctx.execute_alone(statement, params)

        try:
            snoozed = await retry_on_connection_loss(write, "recording the snooze")
        except Exception as exc:
            line = f"could not record the snooze: {format_error(exc)}; the lease expiry will"
            log_error(ctx.engine, ctx.name, "outcome", f"{line} hand the item back")
            return Outcome.UNRECORDED
        if snoozed:
            logger.info("snoozed for {:g} s", snooze.seconds)
            return Outcome.SNOOZED
        why = f"it snoozed {ctx.config.max_snoozes} times already (max_snoozes)"
    else:
        why = f"table {ctx.binding.table.name} has no snoozes column to count it in"
    limit = SnoozeLimitError(f"snoozed for {snooze.seconds:g} s, spending the attempt: {why}")
    return await record_failure(ctx, item, limit, started_at, delay_seconds=snooze.seconds)


async def record_cancelled(
    ctx: RunContext, item: ClaimedItem, reason: str | None, started_at: datetime
) -> Outcome:
    """The service was cancelled on request (`curate.engine.cancel`): the row ends in the
    workflow's cancelled status (its failed status if it has none), fenced on the claim."""
    message = f"Cancelled: {reason}" if reason else "Cancelled"
    attempt = ctx.attempt_params(started_at, history.CANCELLED)
    to_status = ctx.binding.statuses.cancel_ends_in
    refused = await _write_failure(
        ctx, item, message, attempt, to_status=to_status, delay_seconds=None
    )
    if refused is Outcome.DROPPED:
        return _claim_lost("cancellation")
    if refused is not None:
        return refused
    logger.warning("cancelled while it ran: {}", message)
    return Outcome.CANCELLED


async def _write_failure(
    ctx: RunContext,
    item: ClaimedItem,
    message: str,
    attempt: dict[str, Any],
    *,
    to_status: enum.Enum,
    delay_seconds: float | None,
) -> Outcome | None:
    """The fenced failure write, with ``attempt`` (`RunContext.attempt_params`): None once
    written, else why it was not (DROPPED: no row was ours in Processing; the caller says
    why)."""
    params = {
        **ctx.statements.fail_params(
            item.id,
            item.claim,
            item.attempt,
            to_status=to_status,
            error=message,
            delay_seconds=delay_seconds,
            now=clock.now_override(),
        ),
        **attempt,
    }

    async def write() -> Any:
        rows = await ctx.execute_alone(ctx.statements.fail, params)
        return rows[0] if rows else None

    try:
        written = await retry_on_connection_loss(write, "recording the failure")
    except Exception as exc:  # the same for every item of a locked table: said once
        line = (
            f"could not record the failure ({message}): {format_error(exc)}; the lease expiry"
            " will hand the item back"
        )
        log_error(ctx.engine, ctx.name, "outcome", line)
        return Outcome.UNRECORDED
    log_recovery(ctx.engine, ctx.name, "outcome")
    return Outcome.DROPPED if written is None else None


def _claim_lost(what: str) -> Outcome:
    logger.warning("claim lost before the {} was written; the outcome is dropped", what)
    return Outcome.DROPPED


async def release_unstarted(ctx: RunContext, items: list[ClaimedItem]) -> None:
    """Hand claimed items that never started back to Queued (shutdown), in one transaction."""

    async def write() -> None:
        async with ctx.own_transaction() as session:
            for item in items:
                await session.execute(
                    ctx.statements.release,
                    ctx.statements.release_params(item.id, item.claim, item.attempt),
                )

    try:
        await retry_on_connection_loss(write, "releasing unstarted items")
    except Exception as exc:
        logger.error("could not release {} unstarted item(s): {}", len(items), format_error(exc))
        return
    logger.info("released {} claimed but unstarted item(s) back to the queue", len(items))
