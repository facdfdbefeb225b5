"""Connections through a pooler in transaction mode (``CURATE_DATABASE_POOLING=transaction``).

Such a pooler (PgBouncer's ``pool_mode = transaction``, Supavisor in transaction mode) lends a
server connection to a client for one transaction; the client's next transaction may get
another one, which other clients used meanwhile. So nothing of a session is relied on:

- No statement is prepared under a name: it would stay behind on a server connection
  that other clients get next (``prepared statement "__asyncpg_stmt_60__" does not
  exist``, or ``already exists``). asyncpg's statement cache and SQLAlchemy's are off, and
  SQLAlchemy's adapter prepares each statement unnamed. The unnamed statement is replaced
  by the next one parsed on that server connection, so nothing is left behind (unique
  names, as SQLAlchemy's documentation suggests, would each stay on the server until the
  pooler closes the connection). asyncpg sends an uncached unnamed statement's Parse again
  with its Bind, in one message group, so even a statement outside a transaction runs on
  the server that parsed it.
- The schema is not a startup parameter (PgBouncer refuses ``search_path`` there, and a
  setting made once would not follow the client to the next server connection): every
  transaction starts with ``SET LOCAL search_path``, sent with its ``BEGIN`` in one round
  trip. A statement outside a transaction would miss it, so curate's own single
  statements (`curate.engine.driver`) then run inside one (`fetch_alone`).
- ``application_name`` stays a startup parameter: PgBouncer tracks it per client.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import asyncpg


class TransactionPooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """asyncpg's connection, through a pooler in transaction mode; a subclass for a schema
    (`connection_class`) sets the ``search_path`` at the start of every transaction."""

    begin_suffix = ""
    """SQL sent after each ``BEGIN`` in the same simple query (``SET LOCAL ...;``)."""

    async def execute(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (asyncpg's signature)
    ) -> str:
        # asyncpg's Transaction.start sends "BEGIN[ ISOLATION LEVEL ...];" through here,
        # without arguments: a simple query, which may hold several statements.
        if self.begin_suffix and not args and query.startswith("BEGIN"):
            query += self.begin_suffix
        status: str = await super().execute(query, *args, timeout=timeout)
        return status


@functools.cache
def connection_class(schema: str | None) -> type[TransactionPooledConnection]:
    """The connection class whose transactions put ``schema`` first on the search_path (as
    ``CURATE_DATABASE_SCHEMA`` does in session mode, ``public`` after it)."""
    if schema is None:
        return TransactionPooledConnection
    suffix = f' SET LOCAL search_path TO "{schema}", public;'
    return type(
        "TransactionPooledConnection", (TransactionPooledConnection,), {"begin_suffix": suffix}
    )


async def fetch_alone(driver: Any, sql: str, *arguments: Any, **options: Any) -> list[Any]:
    """``driver.fetch(sql, *arguments, **options)`` of one statement on its own, on asyncpg's
    connection ``driver``: inside a transaction where the search_path is set per
    transaction; else by itself, for one statement is its own transaction, without the
    round trips of BEGIN and COMMIT."""
    # Not isinstance: asyncpg's metaclass makes every connection an instance of every
    # subclass of its Connection.
    per_transaction = issubclass(type(driver), TransactionPooledConnection) and driver.begin_suffix
    async with driver.transaction() if per_transaction else contextlib.nullcontext():
        records: list[Any] = await driver.fetch(sql, *arguments, **options)
    return records


def _unnamed() -> str:
    """SQLAlchemy's name for each statement it prepares: the empty name, unnamed."""
    return ""


def transaction_pooling_arguments(schema: str | None) -> dict[str, Any]:
    """The connection arguments (``asyncpg.connect``'s and SQLAlchemy's adapter's) that
    keep every statement and setting within its transaction."""
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unnamed,
        "connection_class": connection_class(schema),
    }
