"""The rescuer: rows whose lease expired (their worker died or stalled) go back to the queue;
those an operator asked to cancel before their worker could hear it end cancelled instead.

Any number of workers schedule it; a PostgreSQL advisory lock, taken per workflow for the
length of one transaction, makes one of them do the work at a time and the others skip.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Executable, func, select

from curate.db.own_tables import missing_table
from curate.engine.context import RunContext
from curate.engine.hooks import notify_observers
from curate.logs import logger
from curate.sql import cancel as cancel_sql


@dataclass(frozen=True)
class Rescued:
    """One row the rescuer moved, and where to."""

    id: Any
    attempt: int
    status: Any


async def _abandoned_cancels(ctx: RunContext) -> Executable | None:
    """The statement ending cancelled the expired rows asked to cancel (their worker went
    away before it heard), where the requests' table exists; else None."""
    if await missing_table(ctx.engine, cancel_sql.TABLE) is not None:
        return None
    return cancel_sql.cancel_abandoned(ctx.binding, with_history=ctx.statements.records_history)


def _abandoned_params(ctx: RunContext) -> dict[str, Any]:
    statuses = ctx.binding.statuses
    return {
        **ctx.attempt_params(None),
        "curate_cancelled": ctx.binding.status_value(statuses.cancel_ends_in),
        "curate_processing": ctx.binding.status_value(statuses.processing),
    }


def advisory_lock_key(ctx: RunContext) -> int:
    """The rescuer's lock of ``ctx``'s workflow (same in every process)."""
    return ctx.binding.advisory_key("rescue")


async def rescue_expired(ctx: RunContext) -> list[Rescued] | None:
    """Return expired rows of ``ctx``'s workflow; None if another worker holds the lock.

    Raises what the database raises; the caller logs it and tries again next interval.
    """
    statement = ctx.statements.rescue
    if statement is None:
        return []
    stale = ctx.config.stale_after_seconds
    if ctx.binding.lease_until is None and stale is None:
        return []  # a seed-style table without a stale age: nothing may be presumed dead
    params = {
        **ctx.statements.rescue_params(
            ctx.config.retry.max_attempts, timedelta(seconds=stale) if stale is not None else None
        ),
        **ctx.attempt_params(None),
    }
    started = time.monotonic()
    abandoned = await _abandoned_cancels(ctx)
    async with ctx.own_transaction() as session:
        locked = await session.scalar(
            select(func.pg_try_advisory_xact_lock(advisory_lock_key(ctx)))
        )
        if not locked:
            return None
        if abandoned is not None:
            cancelled = (await session.execute(abandoned, _abandoned_params(ctx))).all()
            if cancelled:
                logger.bind(workflow=ctx.name).warning(
                    "{} item(s) asked to cancel lost their worker first; cancelled now {}",
                    len(cancelled),
                    [row.id for row in cancelled][:10],
                )
        rows = (await session.execute(statement, params)).all()
    rescued = [Rescued(id=row.id, attempt=row.attempt, status=row.status) for row in rows]
    if rescued:
        seconds = time.monotonic() - started
        notify_observers(ctx.observers, lambda o: o.rescued(ctx.name, len(rescued), seconds))
        failed = ctx.binding.status_value(ctx.binding.statuses.failed)
        given_up = [r.id for r in rescued if r.status == failed]
        logger.bind(workflow=ctx.name).warning(
            "rescued {} item(s) whose lease expired: {} queued again, {} out of attempts {}",
            len(rescued),
            len(rescued) - len(given_up),
            len(given_up),
            given_up[:10],
        )
    return rescued
