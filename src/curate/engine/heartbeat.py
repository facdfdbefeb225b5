"""Heartbeat: while items run, extend their leases, all of a run's items in one statement.

A lease that is not renewed expires, and the rescuer hands the row to another worker; a
worker that is alive but slow keeps its rows by beating. Rows the beat no longer finds
(rescued, re-queued, deleted) are logged; their outcome will be refused by the fence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from loguru import logger

from curate.engine.context import RunContext
from curate.engine.error_text import format_error


class Heartbeat:
    """The ids a run holds, and a task that renews their leases every interval."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self.held: dict[Any, int] = {}
        """Item id → attempt of every item the run has claimed and not yet finished."""

    @contextlib.asynccontextmanager
    async def beating(self) -> AsyncIterator[Heartbeat]:
        """Beat in the background for as long as the block runs."""
        if self._ctx.statements.heartbeat is None:
            yield self
            return
        task = asyncio.create_task(self._beat_forever(), name=f"heartbeat {self._ctx.name}")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ctx.config.heartbeat_seconds)
            if self.held:
                await self.beat()

    async def beat(self) -> None:
        """Extend the leases of every held item; a failure is logged, the next beat retries."""
        ctx = self._ctx
        assert ctx.statements.heartbeat is not None
        claims = dict(self.held)
        params = ctx.statements.heartbeat_params(
            claims, ctx.worker_id, timedelta(seconds=ctx.config.lease_seconds)
        )
        try:
            async with ctx.sessionmaker() as session, session.begin():
                renewed = set((await session.execute(ctx.statements.heartbeat, params)).scalars())
        except Exception as exc:
            logger.warning("heartbeat failed, the next one retries: {}", format_error(exc))
            return
        lost = [item_id for item_id in claims if item_id not in renewed and item_id in self.held]
        if lost:
            logger.warning(
                "lost the claim of {} running item(s) {}; their outcome will be refused",
                len(lost),
                lost[:10],
            )
