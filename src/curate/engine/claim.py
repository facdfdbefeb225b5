"""Claiming: one statement marks a batch of due, queued rows Processing for this worker."""

from __future__ import annotations

from datetime import timedelta

from curate.engine.context import ClaimedItem, RunContext


async def claim_batch(ctx: RunContext, limit: int) -> list[ClaimedItem]:
    """Claim up to ``limit`` rows in the workflow's order; rows locked elsewhere are skipped."""
    async with ctx.sessionmaker() as session, session.begin():
        result = await session.execute(
            ctx.statements.claim,
            {
                "limit": limit,
                "worker": ctx.worker_id,
                "lease": timedelta(seconds=ctx.config.lease_seconds),
                "processing": ctx.binding.status_value(ctx.binding.statuses.processing),
            },
        )
        return [ClaimedItem(id=row.id, attempt=row.attempt) for row in result]
