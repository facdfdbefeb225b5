"""Claiming: one statement marks a batch of due, queued rows Processing for this worker."""

from __future__ import annotations

from datetime import timedelta

from curate.clock import clock
from curate.engine.context import ClaimedItem, RunContext


async def claim_batch(ctx: RunContext, limit: int) -> list[ClaimedItem]:
    """Claim up to ``limit`` rows in the workflow's order; rows locked elsewhere are skipped.

    One statement, so it runs as its own transaction (no BEGIN/COMMIT round trips).
    """
    rows = await ctx.execute_alone(
        ctx.statements.claim,
        ctx.statements.claim_params(
            ctx.name,
            limit,
            ctx.worker_id,
            timedelta(seconds=ctx.config.lease_seconds),
            clock.now_override(),
        ),
    )
    return [ClaimedItem(id=row.id, attempt=row.attempt) for row in rows]
