"""curate's pytest plugin (installed with curate): a real PostgreSQL for each test.

Fixtures:

- ``curate_database_url`` (session): ``CURATE_TEST_DATABASE_URL``; else the server on
  127.0.0.1:5432 (database ``test``) when it answers; else an embedded PostgreSQL started
  for the session.
- ``curate_template_setup`` (session): override it in your ``conftest.py`` to return an
  async function that builds your schema, given a database URL (Alembic, or
  ``metadata.create_all``); by default the databases have only curate's own tables.
- ``curate_template``: the name of a database on that server built once per session
  with the test's ``curate_template_setup`` (modules that override it differently get a
  template each), then curate's own tables where missing (as ``curate db upgrade``
  does); dropped at the end of the session.
- ``curate_database``: the URL of a fresh copy of the template for the test
  (``CREATE DATABASE curate_test_<hex> TEMPLATE …``, about 65 ms on a local PostgreSQL
  15), dropped afterwards; the names say where a crashed run's leftovers come from.
- ``curate_harness``: a `curate.testing.WorkflowHarness` on a curate runtime configured on
  that database; afterwards the clock is unfrozen and curate closed and reset.
- ``curate_schema``: a fresh schema for the test in ``curate_database_url``, with
  curate's own tables, dropped afterwards; ``curate_settings``: `CurateSettings` on it;
  ``curate_runtime``: curate configured with those settings for the test, then closed and
  reset (the shared scheduler too). For tests that create their tables themselves.

The async fixtures need pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from curate import scheduling
from curate.clock import clock
from curate.db.connect_args import connect_args
from curate.db.embedded import start_embedded_postgres
from curate.db.own_tables import create_own_tables
from curate.runtime import Runtime, configure, reset_runtime
from curate.settings import CurateSettings
from curate.testing import TemplateSetup, WorkflowHarness

LOCAL_TEST_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

_T = TypeVar("_T")

_DISCONNECT = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = :curate_database AND pid <> pg_backend_pid()"
)
"""Close what a template setup left connected: a database is copied only when idle."""


def _local_server_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def curate_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test server's URL: CURATE_TEST_DATABASE_URL, 127.0.0.1:5432, or embedded."""
    configured = os.environ.get("CURATE_TEST_DATABASE_URL")
    if configured:
        yield CurateSettings(database_url=configured).database_url or configured
    elif _local_server_answers():
        yield LOCAL_TEST_DATABASE
    else:
        server = start_embedded_postgres(tmp_path_factory.mktemp("curate-pg") / "data")
        yield server.url
        server.release()


@pytest.fixture(scope="session")
def curate_template_setup() -> TemplateSetup | None:
    """Override: return ``async def build(url: str) -> None`` making the app's tables."""
    return None


@pytest.fixture(scope="session")
def curate_templates(curate_database_url: str) -> Iterator[dict[TemplateSetup | None, str]]:
    """The template databases of this session, one per ``curate_template_setup`` (test
    modules may each override it), dropped at the end of the session."""
    built: dict[TemplateSetup | None, str] = {}
    yield built
    for name in built.values():
        _run_apart(_drop_database(curate_database_url, name))


@pytest.fixture
def curate_template(
    curate_database_url: str,
    curate_template_setup: TemplateSetup | None,
    curate_templates: dict[TemplateSetup | None, str],
) -> str:
    """A database built once per session by this test's ``curate_template_setup``; each
    test gets a copy."""
    if curate_template_setup not in curate_templates:
        curate_templates[curate_template_setup] = _run_apart(
            _create_template(curate_database_url, curate_template_setup)
        )
    return curate_templates[curate_template_setup]


def _run_apart(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` on a loop of its own in a thread, clear of the tests' event loops."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _engine(url: str, **options: Any) -> AsyncEngine:
    """An engine on ``url`` connecting as curate's do: the URL's query parameters and
    CURATE_DATABASE_CONNECT_ARGS given to asyncpg with their types."""
    target = connect_args(url, CurateSettings(database_url=url).database_connect_args)
    return create_async_engine(target.url, connect_args=target.arguments, **options)


def _database_url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


@asynccontextmanager
async def _maintenance(server_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection to the server's ``postgres`` database, outside a transaction, as
    CREATE and DROP DATABASE need (neither runs connected to the database it acts on)."""
    engine = _engine(
        _database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def _create_template(server_url: str, setup: TemplateSetup | None) -> str:
    name = f"curate_template_{uuid.uuid4().hex[:12]}"
    async with _maintenance(server_url) as connection:
        await connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        url = _database_url(server_url, name)
        if setup is not None:
            await setup(url)
        engine = _engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                await create_own_tables(connection)
        finally:
            await engine.dispose()
        async with _maintenance(server_url) as connection:
            await connection.execute(_DISCONNECT, {"curate_database": name})
    except BaseException:
        await _drop_database(server_url, name)
        raise
    return name


async def _drop_database(server_url: str, name: str) -> None:
    async with _maintenance(server_url) as connection:
        await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _settings(database_url: str, schema: str | None = None) -> CurateSettings:
    return CurateSettings(
        database_url=database_url,
        database_schema=schema,
        worker_id=f"pytest-{os.getpid()}",
        pool_size=5,
        embedded_data_dir=Path("/nonexistent"),  # never used: the URL is set
    )


@asynccontextmanager
async def _configured(settings: CurateSettings) -> AsyncIterator[Runtime]:
    """curate configured with ``settings``; afterwards closed and reset, clock and scheduler
    included, so the next test starts from nothing."""
    runtime = configure(settings)
    try:
        yield runtime
    finally:
        clock.unfreeze()
        scheduling.reset_scheduler()
        await runtime.close()
        reset_runtime()


if importlib.util.find_spec("pytest_asyncio") is not None:  # the async fixtures need it
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def curate_database(curate_database_url: str, curate_template: str) -> AsyncIterator[str]:
        """The URL of the test's own copy of the template, dropped afterwards."""
        name = f"curate_test_{uuid.uuid4().hex[:12]}"
        async with _maintenance(curate_database_url) as connection:
            # The server's default strategy: on PostgreSQL 15, WAL_LOG copied a small
            # template in 65 ms here, FILE_COPY (two checkpoints) in 95 ms.
            await connection.execute(text(f"CREATE DATABASE {name} TEMPLATE {curate_template}"))
        try:
            yield _database_url(curate_database_url, name)
        finally:
            await _drop_database(curate_database_url, name)

    @pytest_asyncio.fixture
    async def curate_harness(curate_database: str) -> AsyncIterator[WorkflowHarness]:
        """A `WorkflowHarness` on curate configured for ``curate_database``."""
        async with _configured(_settings(curate_database)) as runtime:
            yield WorkflowHarness(runtime)

    @pytest_asyncio.fixture
    async def curate_schema(curate_database_url: str) -> AsyncIterator[str]:
        """A fresh schema in the server's test database, with curate's own tables, dropped
        afterwards."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        engine = _engine(curate_database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"CREATE SCHEMA {name}"))
                await create_own_tables(conn, name)
            yield name
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
        finally:
            await engine.dispose()

    @pytest_asyncio.fixture
    async def curate_settings(curate_database_url: str, curate_schema: str) -> CurateSettings:
        """`CurateSettings` on ``curate_schema``."""
        return _settings(curate_database_url, curate_schema)

    @pytest_asyncio.fixture
    async def curate_runtime(curate_settings: CurateSettings) -> AsyncIterator[Runtime]:
        """curate configured with ``curate_settings``, then closed and reset."""
        async with _configured(curate_settings) as runtime:
            yield runtime
