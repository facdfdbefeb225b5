"""Ask the database server to notice soon when a worker's connection goes dead.

A worker whose host loses the network holds its rows' leases only until they expire, and
then another worker rescues the rows. But a service that wrote to its own row holds that
row's lock in its open transaction, the rescue skips locked rows, and the server keeps the
transaction until it notices the client is gone: with the operating system's defaults,
after two hours. So each new connection asks the server (``SET``, for the session) to
probe a silent connection after ``CURATE_TCP_KEEPALIVE_SECONDS`` and to give up on data
it sent that goes unacknowledged as long: the server then ends a cut-off worker's sessions
after about twice that, and their locks go with them.

Not a startup parameter: a pooler such as PgBouncer refuses those it does not know, even
in session mode. Not in transaction-pooling mode: a ``SET`` outside a transaction would
stay on a server connection other clients get next (the pooler's own keepalives apply).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from curate.engine.error_text import format_error
from curate.logs import logger

PROBES = 3


def keepalive_statement(idle_seconds: int) -> str:
    """The ``SET``s for ``idle_seconds`` of silence, then `PROBES` probes a third of that
    apart (at least a second); one simple query, so one round trip."""
    interval = max(1, idle_seconds // PROBES)
    give_up_ms = (idle_seconds + PROBES * interval) * 1000
    return (
        f"SET tcp_keepalives_idle = {idle_seconds};"
        f" SET tcp_keepalives_interval = {interval};"
        f" SET tcp_keepalives_count = {PROBES};"
        f" SET tcp_user_timeout = {give_up_ms}"
    )


def ask_for_keepalives(engine: AsyncEngine, idle_seconds: int) -> None:
    """Send `keepalive_statement` on each new connection of ``engine``; nothing when
    ``idle_seconds`` is 0 (the server's own settings)."""
    if not idle_seconds:
        return
    statement = keepalive_statement(idle_seconds)
    refused: list[str] = []

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if refused:  # the server said no once (an old or unusual server): it will again
            return
        try:
            dbapi_connection.run_async(lambda connection: connection.execute(statement))
        except Exception as exc:  # the connection still works; only the probes are lost
            refused.append(format_error(exc))
            logger.warning(
                "the database server refused TCP keepalive settings ({}): a worker cut off"
                " by the network keeps its row locks until the server's own keepalives"
                " notice; set CURATE_TCP_KEEPALIVE_SECONDS=0 to stop asking",
                refused[0],
            )

    event.listen(engine.sync_engine, "connect", on_connect)
