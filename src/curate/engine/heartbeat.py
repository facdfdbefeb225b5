"""Heartbeat: while items run, extend their leases, all of a run's items in one statement,
and look for cancel requests a worker without LISTEN missed (`curate.engine.cancel`).

A lease that is not renewed expires, and the rescuer hands the row to another worker; a
worker that is alive but slow keeps its rows by beating. Items are held per claim (id and
claim token), so a row claimed again while an earlier claim of it still runs is two items.
A row a live transaction has locked (a service writing to its own row) is skipped, not
waited for; the rescuer skips it too while it is locked. Rows the beat could not renew are
logged: skipped ones are tried again at the next beat, lost ones (rescued, re-queued,
deleted) will have their outcome refused by the fence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

from curate.db.own_tables import missing_table
from curate.engine.context import ClaimedItem, RunContext
from curate.engine.error_text import format_error
from curate.engine.repeated_errors import log_error, log_recovery
from curate.logs import logger
from curate.sql import cancel as cancel_sql


class Heartbeat:
    """The claims a run holds, and a task that renews their leases every interval."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self.held: set[ClaimedItem] = set()
        """Every item the run has claimed whose outcome is not written yet."""

    def hold(self, items: Iterable[ClaimedItem]) -> None:
        self.held.update(items)

    def let_go(self, items: Iterable[ClaimedItem]) -> None:
        self.held.difference_update(items)

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
        """Extend the leases of every held item it can; a failure is logged, the next beat
        retries."""
        ctx = self._ctx
        statements = ctx.statements
        assert statements.heartbeat is not None and statements.still_held is not None
        claims = [(item.id, item.claim) for item in self.held]
        params = statements.heartbeat_params(claims, timedelta(seconds=ctx.config.lease_seconds))
        still: list[Any] = []
        try:
            async with ctx.own_transaction() as session:
                rows = (await session.execute(statements.heartbeat, params)).all()
                missed = _missed(claims, rows)
                if missed:
                    still = list(
                        await session.execute(
                            statements.still_held, statements.still_held_params(missed)
                        )
                    )
        except Exception as exc:  # said once while it keeps failing the same way
            line = f"heartbeat failed, the next one retries: {format_error(exc)}"
            log_error(ctx.engine, ctx.name, "heartbeat", line)
            return
        log_recovery(ctx.engine, ctx.name, "heartbeat")
        if missed:
            self._log_missed(missed, set(_pairs(still)))
        await self._look_for_cancels([claim for _, claim in claims])

    async def _look_for_cancels(self, claims: list[str]) -> None:
        """Cancel the held items asked to cancel, for a worker that missed the NOTIFY. Its
        own statement, after the renewal: a database that refuses it (no SELECT on the
        requests' table, say) never costs a lease."""
        ctx = self._ctx
        try:
            if await missing_table(ctx.engine, cancel_sql.TABLE) is not None:
                return
            requested = await ctx.execute_alone(
                cancel_sql.REQUESTED_CLAIMS, cancel_sql.requested_params(ctx.name, claims)
            )
        except Exception as exc:
            line = f"could not look for cancel requests, the next beat retries: {format_error(exc)}"
            log_error(ctx.engine, ctx.name, "cancel requests", line)
            return
        log_recovery(ctx.engine, ctx.name, "cancel requests")
        for request in requested:
            ctx.services.cancel((request.claim, request.item_id), request.reason)

    def _log_missed(self, missed: list[tuple[Any, str]], still: set[tuple[Any, str]]) -> None:
        held = {(item.id, item.claim) for item in self.held}
        locked = [item_id for item_id, claim in missed if (item_id, claim) in still]
        lost = [
            item_id
            for item_id, claim in missed
            if (item_id, claim) not in still and (item_id, claim) in held
        ]
        if locked:
            logger.warning(
                "could not renew the lease of {} item(s) {}: a transaction holds their row"
                " locked (the service's own write?); the next beat tries again",
                len(locked),
                locked[:10],
            )
        if lost:
            logger.warning(
                "lost the claim of {} running item(s) {}; their outcome will be refused",
                len(lost),
                lost[:10],
            )


def _pairs(rows: Iterable[Any]) -> Iterable[tuple[Any, str]]:
    return ((row.id, row.claim) for row in rows)


def _missed(claims: list[tuple[Any, str]], renewed: Iterable[Any]) -> list[tuple[Any, str]]:
    done = set(_pairs(renewed))
    return [claim for claim in claims if claim not in done]
