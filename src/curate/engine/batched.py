"""Batched outcomes: the completions of many items written in one fenced statement.

For services that do not need their writes and the Complete status in one transaction
(they write nothing, or commit their own work): each item then costs no round trip of its
own. The price is at-least-once: an item whose service finished but whose completion was
not written yet (the worker died in between) runs again after its lease expires.
Failures are still written one by one, as in the per-item mode.
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from curate.engine.backoff import retry_on_connection_loss
from curate.engine.context import ClaimedItem, RunContext
from curate.engine.error_text import format_error
from curate.engine.outcome import Outcome


class CompletionBatch:
    """Completions waiting to be written together; written when ``size`` are waiting and
    when the run ends (`flush`). Counts what the writes found."""

    def __init__(self, ctx: RunContext, size: int) -> None:
        if ctx.statements.complete_many is None:
            raise RuntimeError("batched outcomes need the attempts and claimed_by columns")
        self.ctx = ctx
        self.size = size
        self.pending: dict[Any, int] = {}
        self.completed = 0
        self.dropped = 0
        """Rows no longer Processing under this claim (rescued, re-queued, set by the
        service itself): nothing written for them."""
        self.unrecorded = 0

    async def record(self, session: AsyncSession, item: ClaimedItem) -> Outcome:
        """The service succeeded: commit what it left open, queue its completion."""
        if session.in_transaction():
            await session.commit()
        self.pending[item.id] = item.attempt
        if len(self.pending) >= self.size:
            await self.flush()
        return Outcome.BATCHED

    async def flush(self) -> None:
        """Write the waiting completions in one statement (retried on connection loss)."""
        if not self.pending:
            return
        claims, self.pending = self.pending, {}
        ctx = self.ctx
        assert ctx.statements.complete_many is not None
        params = ctx.statements.complete_many_params(claims, ctx.worker_id)

        async def write() -> int:
            assert ctx.statements.complete_many is not None
            return len(await ctx.execute_alone(ctx.statements.complete_many, params))

        try:
            written = await retry_on_connection_loss(write, "recording completions")
        except Exception as exc:
            self.unrecorded += len(claims)
            logger.error(
                "could not record {} completions ({}); their leases will hand them back",
                len(claims),
                format_error(exc),
            )
            return
        self.completed += written
        if written < len(claims):
            self.dropped += len(claims) - written
            logger.warning(
                "{} of {} completions found their row no longer held; not written",
                len(claims) - written,
                len(claims),
            )
