"""Instant pick-up: one LISTEN connection per process wakes the right workflow at once.

A trigger (``curate.migrations.create_notify_trigger``) or ``curate.notify`` sends
``NOTIFY curate_<workflow>`` when a row is queued. PostgreSQL folds identical
notifications of one transaction into one, so queueing 10,000 rows at once wakes a
workflow once. Polling stays the fallback: while the connection is down (it reconnects
with backoff) nothing is lost, only slower; after each (re)connect every workflow is
woken once, for what was queued meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from curate.engine.error_text import format_error
from curate.logs import logger

CHANNEL_PREFIX = "curate_"
HEALTH_CHECK_SECONDS = 30.0
"""How often an idle LISTEN connection is checked (a dead one is replaced)."""
RECONNECT_DELAYS_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


def channel_for(workflow_name: str) -> str:
    """The NOTIFY channel of a workflow: ``curate_<name>`` (PostgreSQL allows 63 bytes)."""
    return f"{CHANNEL_PREFIX}{workflow_name}"[:63]


class Notifier:
    """Listens on the channels of ``workflows`` and calls ``wake(name)`` for each NOTIFY.

    ``connect_args`` gives ``asyncpg.connect``'s keyword arguments when connecting (those of
    ``CURATE_LISTEN_DATABASE_URL`` beside a transaction pooler, else the same as the
    engine's connections get; it may start the embedded server).
    """

    def __init__(
        self,
        connect_args: Callable[[], Awaitable[dict[str, Any]]],
        workflows: list[str],
        wake: Callable[[str], None],
        handlers: Mapping[str, Callable[[str], None]] | None = None,
    ) -> None:
        """``handlers``: other channels to listen on, each with what to call with a
        notification's payload (the cancel requests, `curate.engine.cancel`)."""
        self._connect_args = connect_args
        self._channels = {channel_for(name): name for name in workflows}
        self._wake = wake
        self._handlers = dict(handlers or {})
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.received = 0
        """Notifications received (a burst of identical ones in a transaction counts once)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="curate LISTEN")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0
            except Exception as exc:  # any failure: poll meanwhile, then reconnect
                self.connected.clear()
                delay = RECONNECT_DELAYS_SECONDS[min(failures, len(RECONNECT_DELAYS_SECONDS) - 1)]
                failures += 1
                logger.warning(
                    "LISTEN connection lost ({}); polling meanwhile, reconnecting in {:g} s",
                    format_error(exc),
                    delay,
                )
                await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        # A 10 s connect timeout unless one is configured: the loop above retries.
        connection = await asyncpg.connect(**{"timeout": 10, **await self._connect_args()})
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            for channel in [*self._handlers, *self._channels]:
                await connection.add_listener(channel, self._on_notification)
            self.connected.set()
            logger.debug("listening on {}", ", ".join(self._channels))
            for name in self._channels.values():
                self._wake(name)  # whatever was queued while we were not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), HEALTH_CHECK_SECONDS)
                if not lost.is_set():
                    await connection.execute("SELECT 1", timeout=10)
            raise ConnectionError("the server closed the LISTEN connection")
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    def _on_notification(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.received += 1
        name = self._channels.get(channel)
        if name is not None:
            self._wake(name)
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(payload)
