"""Retrying curate's own database writes through a connection loss, with backoff.

Only errors that say the connection or the server is gone are retried; a mistake in a
statement is not, it would fail the same way again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from asyncpg.exceptions import CannotConnectNowError, PostgresConnectionError
from asyncpg.exceptions import InterfaceError as AsyncpgInterfaceError
from loguru import logger
from sqlalchemy.exc import DBAPIError

from curate.engine.error_text import format_error

T = TypeVar("T")

DELAYS_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Waits between tries: about 8 s in all before giving up (leases hand the item back)."""


CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")
"""Connection exceptions (class 08), and the server shutting down or starting up."""


def is_connection_error(error: BaseException) -> bool:
    """The database went away (or is restarting): trying again later may work.

    Looks through SQLAlchemy's and asyncpg's wrappers (``orig``, ``__cause__``).
    """
    seen: BaseException | None = error
    for _ in range(10):  # a wrapper chain is short; never follow a cycle for ever
        if seen is None:
            return False
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(
            seen,
            OSError
            | ConnectionError
            | PostgresConnectionError
            | CannotConnectNowError
            | AsyncpgInterfaceError,
        ):
            return True
        sqlstate = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(CONNECTION_SQLSTATES):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


async def retry_on_connection_loss(
    operation: Callable[[], Awaitable[T]],
    what: str,
    delays: tuple[float, ...] = DELAYS_SECONDS,
) -> T:
    """Run ``operation``; after a connection error wait and try again, up to len(delays)."""
    for delay in delays:
        try:
            return await operation()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            logger.warning("{} failed, retrying in {:g} s: {}", what, delay, format_error(exc))
            await asyncio.sleep(delay)
    return await operation()
