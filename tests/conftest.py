"""Fixtures: a real PostgreSQL, an isolated schema per test, a configured curate runtime.

The server is, in order: ``CURATE_TEST_DATABASE_URL``; the local server on 127.0.0.1:5432
(database ``test``) when it answers; otherwise an embedded PostgreSQL started for the run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import curate
from curate import scheduling
from curate.db.embedded import start_embedded_postgres
from tests.models import Base

LOCAL_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _local_server_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    configured = os.environ.get("CURATE_TEST_DATABASE_URL")
    if configured:
        return curate.CurateSettings(database_url=configured).database_url or configured
    if _local_server_answers():
        return LOCAL_SERVER
    return start_embedded_postgres(Path(tmp_path_factory.mktemp("pg")) / "data").url


@pytest.fixture
async def admin_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def schema(admin_engine: AsyncEngine) -> AsyncIterator[str]:
    """A fresh schema for this test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with admin_engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {name}"))
    yield name
    async with admin_engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA {name} CASCADE"))


@pytest.fixture
def settings(database_url: str, schema: str) -> curate.CurateSettings:
    return curate.CurateSettings(
        database_url=database_url, database_schema=schema, worker_id="test-worker", pool_size=5
    )


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No stray CURATE_/*_SCHEDULER_ variables from the developer's shell or `.env`."""
    for key in list(os.environ):
        if key.startswith("CURATE_") and key != "CURATE_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
        if "_SCHEDULER_" in key:
            monkeypatch.delenv(key)
    yield
    scheduling.reset_scheduler()
    curate.reset_runtime()


@pytest.fixture
async def runtime(settings: curate.CurateSettings) -> AsyncIterator[curate.Runtime]:
    rt = curate.configure(settings)
    engine = await rt.database.engine()
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield rt
    await rt.database.dispose()


@pytest.fixture
async def engine(runtime: curate.Runtime) -> AsyncEngine:
    """The runtime's engine (search_path on the test's schema), for assertions."""
    return await runtime.database.engine()
