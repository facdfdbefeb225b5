"""curate.testing and the plugin's database-per-test fixtures, used as an app would use them.

The fixtures come from curate's pytest plugin (the ``curate`` pytest11 entry point); this
module overrides ``curate_template_setup`` so the template database has its table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from curate import NonRetryableError, ProcessingStatus, Workflow, workflow_columns
from curate.testing import FailedRow, NotDrainedError, TemplateSetup, WorkflowHarness
from tests.helpers import noop

metadata = MetaData()
pages = Table(
    "pages",
    metadata,
    Column("id", Integer, primary_key=True),
    *workflow_columns("fetch"),
    *workflow_columns("parse"),
)
"""One table, two workflows: ``fetch`` and ``parse``."""

Queued, Processing, Complete, Error = (
    ProcessingStatus.Queued,
    ProcessingStatus.Processing,
    ProcessingStatus.Complete,
    ProcessingStatus.Error,
)


@pytest.fixture(scope="session")
def curate_template_setup() -> TemplateSetup:
    async def create_tables(url: str) -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
        finally:
            await engine.dispose()

    return create_tables


async def engine_of(harness: WorkflowHarness) -> AsyncEngine:
    return await harness.runtime.database.engine()


async def add_pages(harness: WorkflowHarness, *rows: dict[str, Any]) -> None:
    async with (await engine_of(harness)).begin() as connection:
        for row in rows:  # one by one: the rows set different columns
            await connection.execute(insert(pages).values(row))


def queued_pages(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "fetch_status": Queued} for i in ids]


def fetch_then(next_stage: Workflow | None = None, *, fail_id: int | None = None) -> Workflow:
    """The ``fetch`` workflow: fails ``fail_id`` for good, queues ``next_stage`` for the row."""

    async def fetch(item_id: Any, session: AsyncSession) -> None:
        if item_id == fail_id:
            raise NonRetryableError(f"page {item_id} is gone")
        if next_stage is not None:
            await next_stage.queue(session, [item_id])

    return Workflow("fetch", model=pages, service=fetch, run_max_items=1)


_databases_seen: list[str] = []


@pytest.mark.parametrize("turn", [1, 2])
async def test_each_test_gets_a_fresh_copy_of_the_template(
    curate_harness: WorkflowHarness, curate_template: str, curate_database_url: str, turn: int
) -> None:
    async with (await engine_of(curate_harness)).begin() as connection:
        assert await connection.scalar(select(func.count()).select_from(pages)) == 0
        await connection.execute(insert(pages), queued_pages(1, 2, 3))
        name = await connection.scalar(text("SELECT current_database()"))
    assert name.startswith("curate_test_")
    assert name != curate_template
    server = create_async_engine(curate_database_url)
    try:
        async with server.connect() as connection:
            existing = set(await connection.scalars(text("SELECT datname FROM pg_database")))
    finally:
        await server.dispose()
    assert curate_template in existing
    assert not existing & set(_databases_seen), "the previous test's database is not dropped"
    _databases_seen.append(name)


async def test_drain_completes_the_queued_rows_and_reports_failures(
    curate_harness: WorkflowHarness,
) -> None:
    fetch = fetch_then(fail_id=2)  # run_max_items=1: drain must run it once per row
    await add_pages(curate_harness, *queued_pages(1, 2, 3), {"id": 4})

    result = await curate_harness.drain(fetch)

    assert (result.claimed, result.completed, result.failed) == (3, 2, 1)
    assert await curate_harness.complete(fetch) == [1, 3]
    assert await curate_harness.failed(fetch) == [FailedRow(2, "NonRetryableError: page 2 is gone")]
    assert await curate_harness.queued(fetch) == []


async def test_run_pending_runs_a_two_stage_chain_to_the_end(
    curate_harness: WorkflowHarness,
) -> None:
    parse = Workflow("parse", model=pages, service=noop)
    fetch = fetch_then(parse)
    curate_harness.runtime.register(parse)  # parse first: it has work only after fetch ran
    curate_harness.runtime.register(fetch)
    await add_pages(curate_harness, *queued_pages(1, 2, 3))

    results = await curate_harness.run_pending()

    assert {name: r.completed for name, r in results.items()} == {"fetch": 3, "parse": 3}
    assert await curate_harness.complete(fetch) == [1, 2, 3]
    assert await curate_harness.complete(parse) == [1, 2, 3]


async def test_run_pending_needs_a_workflow(curate_harness: WorkflowHarness) -> None:
    with pytest.raises(ValueError, match="no workflow is registered"):
        await curate_harness.run_pending()


async def test_inspectors_list_each_status_of_the_workflow_asked_about(
    curate_harness: WorkflowHarness,
) -> None:
    await add_pages(
        curate_harness,
        {"id": 6, "fetch_status": Complete, "parse_status": Queued},
        {"id": 4, "fetch_status": Queued},
        {"id": 5, "fetch_status": Error, "fetch_error": "boom"},
        {"id": 1, "fetch_status": Queued, "parse_status": Error},
        {"id": 2, "fetch_status": Processing},
        {"id": 3, "fetch_status": Complete},
        {"id": 7},
    )
    fetch = fetch_then()
    parse = Workflow("parse", model=pages, service=noop)

    assert await curate_harness.queued(fetch) == [1, 4]
    assert await curate_harness.processing(fetch) == [2]
    assert await curate_harness.complete(fetch) == [3, 6]
    assert await curate_harness.failed(fetch) == [FailedRow(5, "boom")]
    assert await curate_harness.queued(parse) == [6]
    assert await curate_harness.failed(parse) == [FailedRow(1, None)]


async def test_advancing_the_frozen_clock_makes_a_delayed_row_due(
    curate_harness: WorkflowHarness,
) -> None:
    fetch = fetch_then()
    start = curate_harness.freeze_time(datetime(2030, 1, 1, tzinfo=UTC))
    await add_pages(
        curate_harness,
        {"id": 1, "fetch_status": Queued, "fetch_run_after": start + timedelta(days=1)},
    )

    assert (await curate_harness.drain(fetch)).claimed == 0
    assert curate_harness.advance_time(hours=23) == start + timedelta(hours=23)
    assert (await curate_harness.drain(fetch)).claimed == 0
    assert await curate_harness.queued(fetch) == [1]

    curate_harness.advance_time(3600)
    assert (await curate_harness.drain(fetch)).completed == 1
    assert await curate_harness.complete(fetch) == [1]


async def test_a_pipeline_that_never_ends_fails_at_the_bound(
    curate_harness: WorkflowHarness,
) -> None:
    async def ping(item_id: Any, session: AsyncSession) -> None:
        await parse.queue(session, [item_id])

    async def pong(item_id: Any, session: AsyncSession) -> None:
        await fetch.queue(session, [item_id])

    fetch = Workflow("fetch", model=pages, service=ping)
    parse = Workflow("parse", model=pages, service=pong)
    await add_pages(curate_harness, *queued_pages(1))
    harness = WorkflowHarness(curate_harness.runtime, max_runs=6)

    with pytest.raises(
        NotDrainedError, match=r"still due after 6 runs \(rows claimed: fetch: 4, parse: 3\)"
    ):
        await harness.run_pending(fetch, parse)


async def test_drain_says_when_the_claim_fails(curate_harness: WorkflowHarness) -> None:
    missing = Table(
        "missing", MetaData(), Column("id", Integer, primary_key=True), *workflow_columns("fetch")
    )
    fetch = Workflow("fetch", model=missing, service=noop)

    with pytest.raises(NotDrainedError, match=r'fetch: the claim failed: .*"missing"'):
        await curate_harness.drain(fetch)


def test_the_plugin_is_loaded_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    import curate.pytest_plugin

    assert pytestconfig.pluginmanager.get_plugin("curate") is curate.pytest_plugin
