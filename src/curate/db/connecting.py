"""How curate's engine opens a connection: patient while the server refuses new ones,
plain about a server certificate it cannot trust.

PostgreSQL refuses a connection past ``max_connections`` (``sorry, too many clients
already``, SQLSTATE 53300) and while it starts up or shuts down (57P03). Both pass: other
clients disconnect, the server finishes starting. So a new connection of curate's engine
waits and tries again with backoff, for about as long as a checkout waits for a busy pool
(SQLAlchemy's ``pool_timeout``, 30 s), instead of failing the claim, the outcome or the
service's session that asked for it: the item waits, no attempt is spent. The first
refusal of a streak is one WARNING (at most one a minute), the connection that gets
through after it one INFO; each attempt between is DEBUG.

A server certificate that fails verification (``sslmode=verify-full`` with the wrong
``sslrootcert``, or a host name the certificate does not carry) is a setting to fix, not an
outage to wait out: it is a `ConfigurationError` saying so, never retried.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from curate.errors import ConfigurationError
from curate.logs import logger

REFUSAL_SQLSTATES = ("53300", "57P03")
"""too_many_connections, cannot_connect_now."""

DELAYS_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
"""Waits between attempts at one connection: 32 s in all, then its error is raised."""

QUIET_SECONDS = 60.0
"""A streak of refusals starting sooner than this after the last announced one (a server
at its limit, where some connections get through) is logged at DEBUG only."""


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: SQLAlchemy's ``orig``, then ``__cause__`` (a chain is
    short; a cycle is never followed far)."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return
        yield seen
        seen = getattr(seen, "orig", None) or seen.__cause__


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE PostgreSQL gave for ``error``, through the drivers' wrappers."""
    for cause in error_chain(error):
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def is_refusal(error: BaseException) -> bool:
    """The server refused a new connection for now (too many clients, starting up)."""
    return sqlstate(error) in REFUSAL_SQLSTATES


def guard_connections(engine: AsyncEngine) -> None:
    """Make ``engine``'s new connections wait while the server refuses them, and turn an
    untrusted server certificate into a `ConfigurationError`."""
    event.listen(engine.sync_engine, "do_connect", _Patience().connect)


class _Patience:
    """One engine's streak of refusals and whether it was announced."""

    def __init__(self) -> None:
        self.refused_since: float | None = None
        self.announced = False
        self.announced_at = -math.inf

    def connect(
        self, dialect: Dialect, record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> Any:
        """SQLAlchemy's ``do_connect``: runs in its greenlet, so it may wait."""
        for delay in DELAYS_SECONDS:
            try:
                connection = _connect(dialect, cargs, cparams)
            except Exception as exc:
                if not is_refusal(exc):
                    raise
                self._refused(exc)
                await_(asyncio.sleep(delay))
            else:
                self._accepted()
                return connection
        connection = _connect(dialect, cargs, cparams)  # refused again: the caller's error
        self._accepted()
        return connection

    def _refused(self, error: Exception) -> None:
        now = time.monotonic()
        if self.refused_since is None:
            self.refused_since = now
            if now - self.announced_at >= QUIET_SECONDS:
                self.announced, self.announced_at = True, now
                logger.warning(
                    "the database refuses new connections ({}); waiting for one, retrying"
                    " for up to {:.0f} s (how many connections curate opens:"
                    " CURATE_POOL_SIZE)",
                    str(error).strip(),
                    sum(DELAYS_SECONDS),
                )
                return
        logger.debug("the database refused a new connection again: {}", error)

    def _accepted(self) -> None:
        if self.refused_since is None:
            return
        waited = time.monotonic() - self.refused_since
        level = "INFO" if self.announced else "DEBUG"
        logger.log(level, "the database accepts new connections again, after {:.1f} s", waited)
        self.refused_since, self.announced = None, False


def _connect(dialect: Dialect, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
    try:
        return dialect.connect(*cargs, **cparams)
    except ssl.SSLCertVerificationError as exc:
        raise ConfigurationError(
            f"the database server's TLS certificate is not trusted ({exc.verify_message}):"
            " check sslrootcert in CURATE_DATABASE_URL (the CA that signed the server's"
            " certificate) and, with sslmode=verify-full, that the URL's host is one the"
            " certificate names"
        ) from None
