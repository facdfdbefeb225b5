"""Fixtures: a real PostgreSQL, an isolated schema per test, a configured curate runtime.

The database and the schema come from curate's own pytest plugin (curate.pytest_plugin):
``CURATE_TEST_DATABASE_URL``, else the local server on 127.0.0.1:5432, else an embedded
PostgreSQL; a fresh schema per test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from loguru import logger
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import curate
from curate import scheduling
from tests.helpers import configured
from tests.pgbouncer import PgBouncer, missing_pgbouncer, start_pgbouncer


@pytest.fixture(scope="session")
def database_url(curate_database_url: str) -> str:
    return curate_database_url


@pytest.fixture
def schema(curate_schema: str) -> str:
    return curate_schema


@pytest.fixture(scope="session")
def pgbouncer(database_url: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the test server (tests/pgbouncer.py);
    where it is not installed, skipped, or failed under CI (``CI`` set)."""
    missing = missing_pgbouncer()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the PgBouncer tests must run under CI: {missing}")
        pytest.skip(missing)
    server = make_url(database_url)
    with start_pgbouncer(server.host or "127.0.0.1", server.port or 5432) as bouncer:
        yield bouncer


@pytest.fixture
async def admin_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


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
    curate.propagate_to_logging(False)  # run_job_loop turns it on for the process


@pytest.fixture
async def runtime(settings: curate.CurateSettings) -> AsyncIterator[curate.Runtime]:
    async with configured(settings) as rt:
        yield rt


@pytest.fixture
async def engine(runtime: curate.Runtime) -> AsyncEngine:
    """The runtime's engine (search_path on the test's schema), for assertions."""
    return await runtime.database.engine()


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log line (DEBUG and up) while the test runs."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink)
