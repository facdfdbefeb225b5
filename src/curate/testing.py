"""Helpers for testing code that uses curate (grows into the pytest plugin)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    *,
    seconds: float = 20.0,
    poll_seconds: float = 0.02,
    what: str = "the condition",
) -> None:
    """Poll ``condition`` until it is true; raise `TimeoutError` at the deadline.

    For tests that wait on the database: no fixed sleep, a bound on how long to wait.
    """
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:g} s waiting for {what}")
        await asyncio.sleep(poll_seconds)
