"""The async engine, one per event loop, built from the settings.

asyncpg connections belong to the event loop that opened them. A process may run several
loops one after another (each `asyncio.run`, pytest-asyncio's loop per test), so
`Database` keeps an engine per loop and drops the engines of loops that have closed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from curate.db.connect_args import ConnectArgs, connect_args
from curate.db.connecting import guard_connections
from curate.db.keepalives import ask_for_keepalives
from curate.db.pooling import transaction_pooling_arguments
from curate.logs import logger

if TYPE_CHECKING:  # at run time, curate.settings imports curate.db.connect_args
    from curate.db.embedded import EmbeddedPostgres
    from curate.settings import CurateSettings


class Database:
    """Engines and session factories for the running loop, from `CurateSettings`."""

    def __init__(self, settings: CurateSettings) -> None:
        self.settings = settings
        self._url: str | None = settings.database_url
        self._embedded: EmbeddedPostgres | None = None
        self._engines: dict[asyncio.AbstractEventLoop, AsyncEngine] = {}
        self._sessionmakers: dict[asyncio.AbstractEventLoop, async_sessionmaker[AsyncSession]] = {}

    async def url(self) -> str:
        """The configured URL, or the embedded server's (started on first use)."""
        if self._url is None:
            # Only here: a process given a URL never loads the embedded server's modules.
            from curate.db.embedded import start_embedded_postgres

            self._embedded = await asyncio.to_thread(
                start_embedded_postgres, self.settings.embedded_data_dir
            )
            self._url = self._embedded.url
        return self._url

    async def engine(self) -> AsyncEngine:
        """The engine of the running loop (created on first use in that loop)."""
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            await self._forget_closed_loops()
            target = await self.connect_args()
            engine = create_async_engine(
                target.url,
                pool_size=self.settings.pool_size,
                max_overflow=self.settings.pool_size,
                # No pre-ping: asyncpg's costs three round trips per checkout (a third of
                # an item's time). A connection found dead by a statement is a disconnect
                # error: SQLAlchemy then replaces every pooled connection older than it,
                # and curate retries the statement (curate.engine.backoff).
                connect_args=target.arguments,
            )
            guard_connections(engine)
            if self.settings.database_pooling == "session":
                ask_for_keepalives(engine, self.settings.tcp_keepalive_seconds)
            self._engines[loop] = engine
            self._sessionmakers[loop] = async_sessionmaker(engine, expire_on_commit=False)
        return engine

    async def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """Sessions on the running loop's engine; `expire_on_commit=False`."""
        await self.engine()
        return self._sessionmakers[asyncio.get_running_loop()]

    async def dispose(self) -> None:
        """Close the running loop's connections (at shutdown)."""
        loop = asyncio.get_running_loop()
        engine = self._engines.pop(loop, None)
        self._sessionmakers.pop(loop, None)
        if engine is not None:
            await engine.dispose()

    async def close(self) -> None:
        """At shutdown: close the loop's connections and let go of the embedded server.

        An explicit release matters: servers such as uvicorn end the process by re-raising
        SIGTERM, and then no exit handler runs.
        """
        await self.dispose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.release)
            self._embedded = None
            self._url = self.settings.database_url

    async def connect_args(self) -> ConnectArgs:
        """The engine's URL without asyncpg's query parameters, and asyncpg's arguments: the
        URL's, ``database_connect_args`` over them, curate's ``server_settings`` under
        theirs; through a transaction pooler, those of `curate.db.pooling` over all."""
        url = await self.url()
        if self.settings.database_pooling == "session":
            return self._session_connect_args(url)
        target = connect_args(url, self.settings.database_connect_args, self._server_settings())
        pooled = transaction_pooling_arguments(self.settings.database_schema)
        return ConnectArgs(target.url, {**target.arguments, **pooled})

    @property
    def can_listen(self) -> bool:
        """Whether LISTEN has a session of its own: through ``listen_database_url``, or on
        the database's own connections where no transaction pooler shares them."""
        return (
            self.settings.listen_database_url is not None
            or self.settings.database_pooling == "session"
        )

    async def asyncpg_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``asyncpg.connect`` for the LISTEN connection, outside the
        engine's pool: to ``listen_database_url`` if set, else opened as the engine opens
        its own in session mode."""
        url = self.settings.listen_database_url or await self.url()
        return self._session_connect_args(url).for_asyncpg()

    def _session_connect_args(self, url: str) -> ConnectArgs:
        server_settings = self._server_settings()
        if self.settings.database_schema:
            server_settings["search_path"] = f"{self.settings.database_schema},public"
        return connect_args(url, self.settings.database_connect_args, server_settings)

    def _server_settings(self) -> dict[str, str]:
        """curate's startup parameters: ``application_name`` (a transaction pooler such as
        PgBouncer tracks it per client)."""
        return {"application_name": f"curate {self.settings.worker_id}"[:63]}

    async def _forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._engines if loop.is_closed()]:
            engine = self._engines.pop(loop)
            self._sessionmakers.pop(loop, None)
            logger.debug("dropping the engine of a closed event loop")
            # Its connections belong to the dead loop: dereference them, never touch them.
            await engine.dispose(close=False)
