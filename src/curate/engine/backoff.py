"""Retrying curate's own database writes through a connection loss, with backoff.

Only errors that say the connection or the server is gone are retried; a mistake in a
statement is not, it would fail the same way again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from asyncpg.exceptions import CannotConnectNowError, InternalClientError, PostgresConnectionError
from asyncpg.exceptions import InterfaceError as AsyncpgInterfaceError
from sqlalchemy.exc import DBAPIError

from curate.db.connecting import REFUSAL_SQLSTATES, error_chain, sqlstate
from curate.engine.error_text import format_error
from curate.errors import StatementTimeoutError
from curate.logs import logger

T = TypeVar("T")

DELAYS_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Waits between tries: about 8 s in all before giving up (leases hand the item back)."""


CONNECTION_SQLSTATES = ("08", "57P01", "57P02", *REFUSAL_SQLSTATES)
"""Connection exceptions (class 08), the server shutting down, and the server refusing new
connections (too many clients, starting up: `curate.db.connecting`)."""


def is_connection_error(error: BaseException) -> bool:
    """The database went away, restarted or refuses connections: later may work.

    Looks through SQLAlchemy's and asyncpg's wrappers (``orig``, ``__cause__``). asyncpg's
    internal error (``another operation is in progress``) is one: a connection the server
    ended while it sat idle can say that before it says it is closed. One of curate's
    statements that ran out of time is not: its connection is fine.
    """
    for cause in error_chain(error):
        if isinstance(cause, StatementTimeoutError):
            return False
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(
            cause,
            OSError
            | ConnectionError
            | PostgresConnectionError
            | CannotConnectNowError
            | AsyncpgInterfaceError
            | InternalClientError,
        ):
            return True
    code = sqlstate(error)
    return code is not None and code.startswith(CONNECTION_SQLSTATES)


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
