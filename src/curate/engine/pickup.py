"""Instant pick-up's bookkeeping: which workflows are running, which were woken meanwhile,
timers for rows that become due later, and the LISTEN connection that wakes them.

A wake-up for a workflow that is running marks it, and the running run claims again
before it returns; a wake-up for one that is not starts a run (through ``start_run``).
Both sides are synchronous code, so no wake-up can fall between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from curate.engine.notifier import Notifier


class Pickup:
    """Wake-ups of one process's workflows."""

    def __init__(self, start_run: Callable[[str], None]) -> None:
        self._start_run = start_run
        self._running: dict[str, int] = {}
        self._woken: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.notifier: Notifier | None = None
        """The LISTEN connection, while instant pick-up is on."""

    @property
    def active(self) -> bool:
        return self.notifier is not None

    @contextmanager
    def running(self, name: str) -> Iterator[None]:
        """Around a run of ``name``: wake-ups meanwhile are marked, not started."""
        self._running[name] = self._running.get(name, 0) + 1
        try:
            yield
        finally:
            self._running[name] -= 1

    def take_wake(self, name: str) -> bool:
        """Whether ``name`` was woken since the last call (and forget it)."""
        woken = name in self._woken
        self._woken.discard(name)
        return woken

    def wake(self, name: str) -> None:
        """A queued row for ``name``: mark the running run, or start one."""
        if self._running.get(name, 0):
            self._woken.add(name)
        else:
            self._start_run(name)

    def wake_later(self, name: str, seconds: float) -> None:
        """Wake ``name`` in ``seconds`` (replacing an earlier timer for it)."""
        previous = self._timers.pop(name, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(max(seconds, 0.0), self.wake, name)

    def listen(
        self,
        connect_args: Callable[[], Awaitable[dict[str, Any]]],
        names: list[str],
        handlers: Mapping[str, Callable[[str], None]] | None = None,
    ) -> None:
        """Start the LISTEN connection for ``names`` and the channels of ``handlers``
        (no-op if it runs already)."""
        if self.notifier is None and names:
            self.notifier = Notifier(connect_args, names, self.wake, handlers)
            self.notifier.start()

    async def stop(self) -> None:
        """Stop listening and forget pending timers (shutdown)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self.notifier is not None:
            await self.notifier.stop()
            self.notifier = None
