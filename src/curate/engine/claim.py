"""Claiming: one statement marks a batch of due, queued rows Processing for this worker."""

from __future__ import annotations

from datetime import timedelta

from curate.clock import clock
from curate.engine.context import ClaimedItem, RunContext


async def claim_batch(ctx: RunContext, limit: int) -> list[ClaimedItem]:
    """Claim up to ``limit`` rows in the workflow's order; rows locked elsewhere are skipped."""
    async with ctx.sessionmaker() as session, session.begin():
        result = await session.execute(
            ctx.statements.claim,
            ctx.statements.claim_params(
                limit,
                ctx.worker_id,
                timedelta(seconds=ctx.config.lease_seconds),
                clock.now_override(),
            ),
        )
        return [ClaimedItem(id=row.id, attempt=row.attempt) for row in result]
