"""Batched outcomes: the completions of many items written in one fenced statement.

For services that do not need their writes and the Complete status in one transaction
(they write nothing, or commit their own work): each item then costs no round trip of its
own. The price is at-least-once: an item whose service finished but whose completion was
not written yet (the worker died in between) runs again after its lease expires. A
completion waiting to be written stays held by the run's heartbeat, so its lease does not
lapse while the worker lives. Failures are still written one by one, as in the per-item
mode.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from curate.engine.backoff import retry_on_connection_loss
from curate.engine.context import ClaimedItem, RunContext
from curate.engine.error_text import format_error
from curate.engine.heartbeat import Heartbeat
from curate.engine.outcome import Outcome
from curate.logs import logger


class CompletionBatch:
    """Completions waiting to be written together; written when ``size`` are waiting and
    when the run ends (`flush`). Counts what the writes found."""

    def __init__(self, ctx: RunContext, size: int, heartbeat: Heartbeat) -> None:
        if ctx.statements.complete_many is None:
            raise RuntimeError("batched outcomes need the attempts and claimed_by columns")
        self.ctx = ctx
        self.size = size
        self.heartbeat = heartbeat
        """Holds each waiting completion's claim until it is written."""
        self.pending: dict[object, tuple[ClaimedItem, datetime]] = {}
        """Item id → its claim and when its service started, each id once (the statement
        finds a row's claim by id)."""
        self.completed = 0
        self.dropped = 0
        """Rows no longer Processing under this claim (rescued, re-queued, set by the
        service itself): nothing written for them."""
        self.unrecorded = 0

    async def record(
        self, session: AsyncSession, item: ClaimedItem, started_at: datetime
    ) -> Outcome:
        """The service succeeded: commit what it left open, queue its completion."""
        if session.in_transaction():
            await session.commit()
        if item.id in self.pending:  # an earlier claim of the same row is waiting
            await self.flush()
        self.pending[item.id] = (item, started_at)
        if len(self.pending) >= self.size:
            await self.flush()
        return Outcome.BATCHED

    async def flush(self) -> int:
        """Write the waiting completions in one statement (retried on connection loss),
        then let the heartbeat go of them; how many rows it completed."""
        if not self.pending:
            return 0
        pending, self.pending = list(self.pending.values()), {}
        items = [item for item, _ in pending]
        try:
            return await self._write(items, [started_at for _, started_at in pending])
        finally:
            self.heartbeat.let_go(items)

    async def _write(self, items: list[ClaimedItem], started: list[datetime]) -> int:
        ctx = self.ctx
        statement = ctx.statements.complete_many
        assert statement is not None
        params = {
            **ctx.statements.complete_many_params(
                [(item.id, item.claim, item.attempt) for item in items]
            ),
            **ctx.attempt_params(None),
            "curate_started": started,
        }
        try:
            written = len(
                await retry_on_connection_loss(
                    lambda: ctx.execute_alone(statement, params), "recording completions"
                )
            )
        except Exception as exc:
            self.unrecorded += len(items)
            logger.error(
                "could not record {} completions ({}); their leases will hand them back",
                len(items),
                format_error(exc),
            )
            return 0
        self.completed += written
        if ctx.tally is not None:
            ctx.tally(ctx.name, "completed", written)
        if written < len(items):
            self.dropped += len(items) - written
            logger.warning(
                "{} of {} completions found their row no longer held; not written",
                len(items) - written,
                len(items),
            )
        return written
