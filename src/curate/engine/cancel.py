"""Cancelling a running item where it runs: this process's services by claim, and the
requests that reach them.

A cancel request (`curate.operations.cancel`) names a claim. It reaches the worker that
holds it by NOTIFY (the LISTEN connection of instant pick-up) and, for a worker that
missed it (no LISTEN behind a transaction pooler, a reconnect), by the heartbeat's look at
``curate_cancellations``. The worker cancels the service's task; the executor then rolls
back the service's transaction and records the cancellation, fenced on the claim
(`curate.engine.outcome.record_cancelled`). Only the service is ever cancelled, never the
writing of an outcome: a request that arrives after the service returned changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from curate.db.own_tables import missing_table
from curate.engine.error_text import format_error
from curate.logs import logger
from curate.sql import cancel as sql

REASON_MAX_LENGTH = 1_000
"""A cancel's reason is cut to this (it travels in a NOTIFY payload, at most 8,000 bytes)."""


class CancelledOnRequest(Exception):
    """Raised in place of the service's cancellation when it was asked for: the executor
    records it as the item's outcome."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "cancelled")
        self.reason = reason


REQUEST_MEMORY_SECONDS = 3_600.0
"""How long a request for a claim of this worker that is not running is remembered: one
for a claim whose service has not started yet stops it from starting; one for a claim
whose attempt ended already is dropped after this."""


Attempt = tuple[str, str]
"""One attempt of one item: its claim token and its id as text. A claim token is shared by
every row of one claim statement, so the id is part of it."""


def attempt_of(claim: str, item_id: object) -> Attempt:
    return (claim, str(item_id))


@dataclass
class RunningServices:
    """The services this process is running, by attempt, and the cancels asked of them.

    One per process (`curate.Runtime`), shared by all its runs.
    """

    worker_id: str
    tasks: dict[Attempt, asyncio.Task[object]] = field(default_factory=dict)
    requested: dict[Attempt, tuple[str | None, float]] = field(default_factory=dict)
    """Attempt → (reason, when asked), for attempts of this worker asked to cancel."""

    def started(self, attempt: Attempt, task: asyncio.Task[object]) -> None:
        self.tasks[attempt] = task

    def ended(self, attempt: Attempt) -> None:
        self.tasks.pop(attempt, None)
        self.requested.pop(attempt, None)

    def take_request(self, attempt: Attempt) -> tuple[bool, str | None]:
        """Whether ``attempt`` was asked to cancel (and forget it), with the reason."""
        if attempt not in self.requested:
            return False, None
        reason, _ = self.requested.pop(attempt)
        return True, reason

    def cancel(self, attempt: Attempt, reason: str | None) -> bool:
        """Cancel the service running ``attempt``; True if it runs here. An attempt of
        this worker whose service has not started yet is remembered, and never starts."""
        claim, _ = attempt
        if not claim.startswith(f"{self.worker_id}#"):
            return False
        now = time.monotonic()
        for stale in [
            a for a, (_, at) in self.requested.items() if now - at > REQUEST_MEMORY_SECONDS
        ]:
            del self.requested[stale]
        already = attempt in self.requested
        self.requested[attempt] = (reason, now)
        task = self.tasks.get(attempt)
        if task is None or already:
            return task is not None
        logger.info("cancelling the running service of item {}: {}", attempt[1], reason)
        task.cancel()
        return True

    def on_notification(self, payload: str) -> None:
        """A NOTIFY on `curate.sql.cancel.CHANNEL`: JSON with ``claim``, ``item_id`` and
        ``reason``."""
        try:
            request = json.loads(payload)
            attempt = (str(request["claim"]), str(request["item_id"]))
            reason = request.get("reason")
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "ignored a malformed cancel request {!r}: {}", payload, format_error(exc)
            )
            return
        self.cancel(attempt, reason if isinstance(reason, str) else None)


async def trim_requests(engine: AsyncEngine) -> int:
    """Delete cancel requests a day old (their attempts ended long since); how many."""
    if await missing_table(engine, sql.TABLE) is not None:
        return 0
    async with engine.begin() as connection:
        return (await connection.execute(sql.TRIM)).rowcount
