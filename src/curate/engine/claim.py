"""Claiming: one statement marks a batch of due, queued rows Processing for this worker.

Every claim stamps its rows with a token of its own (the worker id and a random part) in
``claimed_by``. Outcomes, renewals and releases are fenced on that token, so a later claim
of the same row — even by the same worker, even after a requeue reset the attempt count —
never passes for an earlier one.

The claim checks the pause flag in ``curate_workflow_controls``; on a database without
that table (`curate.engine.controls.admit`, which runs before every claim, found it
missing) it claims with the statement that does not read it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, select

from curate.clock import clock
from curate.db.own_tables import seen_missing
from curate.engine.backoff import retry_on_connection_loss
from curate.engine.context import ClaimedItem, RunContext
from curate.sql import controls

CLAIM_RETRY_DELAYS_SECONDS = (0.25, 1.0)
"""A claim is retried briefly: nothing is held yet, and the next run tries again anyway."""

CLAIM_TOKEN_BYTES = 8
"""Random bytes per claim token: 64 bits, so two claims never share one."""

_WORKER_PART_MAX = 200 - 1 - 2 * CLAIM_TOKEN_BYTES
"""The token must fit ``claimed_by``'s String(200): the worker id is cut to this."""


def new_claim_token(worker_id: str) -> str:
    """``<worker id>#<16 hex digits>``: readable as the worker, unique to one claim."""
    return f"{worker_id[:_WORKER_PART_MAX]}#{secrets.token_hex(CLAIM_TOKEN_BYTES)}"


async def claim_batch(ctx: RunContext, limit: int) -> list[ClaimedItem]:
    """Claim up to ``limit`` rows in the workflow's order; rows locked elsewhere are skipped.

    A claim is retried through a lost connection. A claim whose connection broke after it
    committed holds rows the worker never heard of; the retry first takes those (found by
    the token), so the worker never leaves a batch Processing unheartbeated.
    """
    token = new_claim_token(ctx.worker_id)
    tries = 0

    async def claim_or_recover() -> list[ClaimedItem]:
        nonlocal tries
        tries += 1
        if tries > 1:
            recovered = await _claimed_with(ctx, token)
            if recovered:
                return recovered
        return await _claim(ctx, limit, token)

    return await retry_on_connection_loss(
        claim_or_recover, "claim", delays=CLAIM_RETRY_DELAYS_SECONDS
    )


async def _claim(ctx: RunContext, limit: int, token: str) -> list[ClaimedItem]:
    params = ctx.statements.claim_params(
        ctx.name,
        limit,
        token,
        timedelta(seconds=ctx.config.lease_seconds),
        clock.now_override(),
    )
    statement = ctx.statements.claim
    if seen_missing(ctx.engine, controls.TABLE):
        statement = ctx.statements.claim_without_controls
    rows: list[Any]
    if ctx.binding.lock_key is None:
        # One statement, so it runs as its own transaction (no BEGIN/COMMIT round trips).
        rows = await ctx.execute_alone(statement, params)
    else:
        rows = await _claim_one_at_a_time(ctx, statement, params)
    return _claimed_items(ctx, rows, token)


def _claimed_items(ctx: RunContext, rows: list[Any], token: str) -> list[ClaimedItem]:
    """The claimed rows as items, with the trace context that queued them where the
    table keeps one (`curate.contrib.tracing` links to it)."""
    traced = ctx.binding.trace_context is not None
    return [
        ClaimedItem(row.id, row.attempt, token, row.trace_context if traced else None)
        for row in rows
    ]


async def _claim_one_at_a_time(
    ctx: RunContext, statement: Select[Any], params: dict[str, Any]
) -> list[Any]:
    """The claim of a workflow with a lock key, after every earlier claim of it committed.

    The claim decides that a key is free from its statement's snapshot. Two claims
    running at once would each miss the other's uncommitted rows: with rows of one key
    committed out of order, one claims the later row while the other finds the earlier
    row free, and both run. A transaction-level advisory lock taken first (so the claim's
    snapshot is taken after the last holder committed) puts the claims of one workflow
    in a line. It ends with the transaction, so a pooler in transaction mode is fine.
    """
    async with ctx.own_transaction() as session:
        await session.execute(select(func.pg_advisory_xact_lock(ctx.binding.advisory_key("claim"))))
        return list((await session.execute(statement, params)).all())


async def _claimed_with(ctx: RunContext, token: str) -> list[ClaimedItem]:
    statement = ctx.statements.claimed_with
    if statement is None:
        return []
    async with ctx.own_transaction() as session:
        rows = (await session.execute(statement, ctx.statements.claimed_with_params(token))).all()
    return _claimed_items(ctx, list(rows), token)
