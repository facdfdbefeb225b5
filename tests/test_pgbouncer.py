"""curate through a real PgBouncer in transaction mode (tests/pgbouncer.py).

The tests connect through PgBouncer with ``CURATE_DATABASE_POOLING=transaction`` and a
``CURATE_DATABASE_SCHEMA`` (the ``settings`` fixture below), tables and all, with several
workers at once sharing PgBouncer's five server connections: the engine, the seed entry
point, pause and rate limit, a periodic job, the readers (CLI, router, test harness), the
demo and instant pick-up. ``session`` mode, curate's default, fails there at once: the test
that shows it proves that these tests can fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

import curate
from curate import ProcessingStatus, RetryPolicy, Workflow, operations, scheduling
from curate.clock import clock
from curate.demo.site import DemoSite
from curate.testing import WorkflowHarness, wait_until
from tests.helpers import effects_per_item, insert_items, noop, status_counts, worker_runtimes
from tests.models import Base, Effect, Item, SeedStatus
from tests.pgbouncer import POOL_SIZE, PgBouncer
from tests.test_cli import Curate, cli  # noqa: F401 (fixture)
from tests.test_demo import curate_demo
from tests.test_fastapi import client, insert_rows, router_app
from tests.test_seed_compat import (
    children,
    leaves_the_commit_to_curate,
    rows,
    run_seed_loop,
    seed_rows,
)

pytestmark = pytest.mark.pgbouncer

WORKERS = 4
"""Each with a pool of 5: up to 40 client connections over PgBouncer's 5 server ones."""
LEASE = {"lease_seconds": 1.5, "heartbeat_seconds": 0.2}
"""Short enough for the long item to outlive three, long enough that a beat queued behind
PgBouncer's five server connections on a loaded 2-core machine still lands in time (at
0.5 s, CI once saw leases lapse and batched items run twice)."""
PICKUP_OFF = "instant pick-up is off"


@pytest.fixture
def settings(pgbouncer: PgBouncer, database_url: str, schema: str) -> curate.CurateSettings:
    """The test's settings, through PgBouncer in transaction mode (the runtime, engine and
    tables of tests/conftest.py come through it too)."""
    return curate.CurateSettings(
        database_url=pgbouncer.url(database_url),
        database_schema=schema,
        database_pooling="transaction",
        worker_id="test-worker",
        pool_size=5,
    )


async def drain(workers: list[curate.Runtime], flow: Workflow) -> list[curate.RunResult]:
    """Runs of ``flow`` on every worker at once, again until none claims anything (a retry
    written after a run's last claim waits for the next run)."""
    results: list[curate.RunResult] = []
    for _ in range(10):
        runs = await asyncio.gather(*(worker.run(flow) for worker in workers))
        results += runs
        if not any(run.claimed for run in runs):
            return results
    raise AssertionError(f"still claiming after 10 rounds: {results}")


# --- the engine --------------------------------------------------------------------------------

ITEMS = 120
FAILING = {10, 20, 30}
"""Raise on every attempt: Error after the second."""
FLAKY = {11, 21, 31}
"""Raise on the first attempt only."""
LONG = 7
"""Runs for three leases: only the heartbeat keeps its claim."""
ABANDONED = 1001
"""Left Processing under an expired lease by a worker that died: rescued, then run."""


@pytest.mark.parametrize("outcomes", ["per_item", "batched"])
async def test_the_engine_claims_records_retries_heartbeats_and_rescues(
    settings: curate.CurateSettings,
    runtime: curate.Runtime,
    engine: AsyncEngine,
    outcomes: Literal["per_item", "batched"],
) -> None:
    """Even items use no session (their outcome is one statement on the driver), odd ones
    read their row and write an effect through the ORM (the outcome commits with it)."""
    await insert_items(engine, ITEMS)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Item).values(
                id=ABANDONED,
                work_status=ProcessingStatus.Processing,
                work_attempts=1,
                work_claimed_by="dead-worker#1",
                work_lease_until=func.now() - timedelta(minutes=1),
            )
        )
    starts: Counter[int] = Counter()
    servers: dict[int, set[str]] = {}
    loop = asyncio.get_running_loop()

    async def service(item_id: int, session: AsyncSession) -> None:
        starts[item_id] += 1
        if item_id in FAILING:
            raise ValueError(f"item {item_id} is bad")
        if item_id == LONG:
            ends = loop.time() + 3 * LEASE["lease_seconds"]

            async def lease_outlived() -> bool:
                assert await runtime.rescue() == 0
                return loop.time() > ends

            await wait_until(lease_outlived, poll_seconds=0.1, what="three lease lengths")
        if item_id % 2:
            item = await session.get(Item, item_id)
            assert item is not None
            if item_id in FLAKY and item.work_attempts == 1:
                raise ConnectionError("remote end hung up")
            served = await session.execute(
                text("SELECT pg_backend_pid(), current_setting('application_name')")
            )
            pid, name = served.one()
            servers.setdefault(pid, set()).add(name)
            session.add(Effect(item_id=item_id, note="done"))

    flow = Workflow(
        "work",
        model=Item,
        service=service,
        outcomes=outcomes,
        batch_size=10,
        concurrency=4,
        retry=RetryPolicy(max_attempts=2, base_seconds=0),
        **LEASE,
    )
    runtime.register(flow)
    assert await runtime.rescue() == 1  # ABANDONED, queued again
    async with worker_runtimes(settings, WORKERS) as workers:
        results = await drain(workers, flow)

    complete = ITEMS + 1 - len(FAILING)
    assert sum(r.completed for r in results) == complete
    assert sum(r.failed for r in results) == len(FAILING)
    assert await status_counts(engine) == {"Complete": complete, "Error": len(FAILING)}
    retried = FAILING | FLAKY
    assert starts == {i: 2 if i in retried else 1 for i in [*range(1, ITEMS + 1), ABANDONED]}
    odd = [i for i in [*range(1, ITEMS + 1), ABANDONED] if i % 2]
    assert await effects_per_item(engine) == dict.fromkeys(odd, 1)
    async with engine.connect() as conn:
        errors = dict((await conn.execute(select(Item.id, Item.work_error))).all())
        long_row = (await conn.execute(select(Item.__table__).where(Item.id == LONG))).one()
    assert {i: errors[i] for i in FAILING} == {i: f"ValueError: item {i} is bad" for i in FAILING}
    assert (long_row.work_status, long_row.work_attempts) == (ProcessingStatus.Complete, 1)
    # Clients really shared server connections, each still under its own application_name.
    assert any(len(names) > 1 for names in servers.values()), servers
    assert set().union(*servers.values()) <= {f"curate worker-{n}" for n in range(WORKERS)}
    await assert_no_prepared_statement_left(engine)


async def assert_no_prepared_statement_left(engine: AsyncEngine) -> None:
    """Every one of PgBouncer's server connections (as many transactions at once as it
    has) holds no named prepared statement: curate's were unnamed."""
    held = asyncio.Barrier(POOL_SIZE)

    async def prepared_on_one_server() -> tuple[int, int]:
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    text("SELECT pg_backend_pid(), count(*) FROM pg_prepared_statements")
                )
            ).one()
            await held.wait()  # so that the others are on other server connections
            return row[0], row[1]

    found = await asyncio.gather(*(prepared_on_one_server() for _ in range(POOL_SIZE)))
    assert len({pid for pid, _ in found}) == POOL_SIZE
    assert [count for _, count in found] == [0] * POOL_SIZE


async def test_the_seed_compatible_job_loop(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    ids = await seed_rows(engine, 23)
    result = await run_seed_loop(leaves_the_commit_to_curate, batch_size=5, drain=True)
    assert result.completed == 23
    assert await rows(engine) == dict.fromkeys(ids, (SeedStatus.complete, None))
    assert await children(engine) == 23


async def test_pause_and_rate_limit(settings: curate.CurateSettings, engine: AsyncEngine) -> None:
    started: list[float] = []
    loop = asyncio.get_running_loop()

    async def timed(item_id: int, session: AsyncSession) -> None:
        started.append(loop.time())

    work = Workflow("work", model=Item, service=timed, rate_limit=5.0, concurrency=10)
    await insert_items(engine, 8)
    async with worker_runtimes(settings, 2) as workers:
        assert await operations.pause_workflow(engine, work, "maintenance") is True
        paused = await asyncio.gather(*(worker.run(work) for worker in workers))
        assert [run.claimed for run in paused] == [0, 0]
        assert await operations.resume_workflow(engine, work) is True
        resumed = await drain(workers, work)

    assert sum(run.completed for run in resumed) == 8
    # 5 at once from the full bucket, then 3 more at 5 a second.
    assert max(started) - min(started) >= 0.5, started


async def test_a_periodic_job(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    times: list[datetime] = []

    @curate.periodic(every_seconds=1)
    async def tick(scheduled_at: datetime, session: AsyncSession) -> None:
        await session.execute(text("SELECT 1 FROM curate_periodic_runs LIMIT 1"))
        times.append(scheduled_at)

    scheduling.add_periodic_job(tick)
    scheduling.start_scheduler()

    async def finished_twice() -> bool:
        async with engine.connect() as conn:
            finished = await conn.scalar(
                text(
                    "SELECT count(*) FROM curate_periodic_runs"
                    " WHERE job_name = 'tick' AND finished_at IS NOT NULL AND error IS NULL"
                )
            )
        return bool(finished and finished >= 2)

    await wait_until(finished_twice, seconds=10, what="two runs of the periodic job")
    await scheduling.shutdown_scheduler()
    assert len(times) >= 2 and times[1] - times[0] >= timedelta(seconds=1)


# --- reading: the CLI, the router, the test harness -------------------------------------------


@pytest.fixture
def env(settings: curate.CurateSettings) -> dict[str, str]:
    """The CLI's environment (tests/test_cli.py's ``cli`` fixture), through PgBouncer."""
    assert settings.database_url is not None and settings.database_schema is not None
    return {
        **os.environ,
        "CURATE_DATABASE_URL": settings.database_url,
        "CURATE_DATABASE_POOLING": "transaction",
        "CURATE_DATABASE_SCHEMA": settings.database_schema,
        "CURATE_APP": "tests.cli_app:WORKFLOWS",
        "CURATE_LOG_LEVEL": "WARNING",
    }


async def test_curate_status(
    runtime: curate.Runtime,
    engine: AsyncEngine,
    cli: Curate,  # noqa: F811
) -> None:
    await insert_rows(engine)
    status = await cli("status", "--json")
    assert status.code == 1, status  # rows in Error
    work, seed = json.loads(status.out)["workflows"]
    assert work["counts"] == {
        "queued": 2,
        "processing": 2,
        "complete": 1,
        "error": 2,
        "other": 0,
        "unset": 0,
    }
    assert (work["expired_leases"], seed["counts"]["complete"]) == (1, 1)
    assert "Traceback" not in status.err


async def test_the_router_and_dashboard(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    await insert_rows(engine)
    async with client(router_app()) as http:
        report = (await http.get("/curate/workflows")).json()
        item = (await http.get("/curate/workflows/work/items/4")).json()
        dashboard = await http.get("/curate/dashboard")
    assert [w["name"] for w in report["workflows"]] == ["work", "seed"]
    assert report["workflows"][0]["counts"]["error"] == 2
    assert (item["status"], item["error"]) == ("Error", "ValueError: row 4\ntb")
    assert dashboard.status_code == 200
    assert re.search(r'data-count="queued">2<', dashboard.text)


async def test_the_test_harness(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    async def fails_on_three(item_id: int, session: AsyncSession) -> None:
        if item_id == 3:
            raise curate.NonRetryableError("three is not allowed")

    work = Workflow("work", model=Item, service=fails_on_three)
    harness = WorkflowHarness(runtime)
    await insert_items(engine, 4)
    async with engine.begin() as conn:
        delayed = (
            update(Item).where(Item.id == 4).values(work_run_after=func.now() + timedelta(hours=1))
        )
        await conn.execute(delayed)

    try:
        result = await harness.drain(work)
        assert (result.completed, result.failed) == (2, 1)
        assert await harness.queued(work) == [4]
        harness.advance_time(hours=2)
        await harness.drain(work)
    finally:
        clock.unfreeze()
    assert await harness.complete(work) == [1, 2, 4]
    assert [(row.id, row.error) for row in await harness.failed(work)] == [
        (3, "NonRetryableError: three is not allowed")
    ]


# --- the demo ---------------------------------------------------------------------------------


def summary(output: str) -> list[str]:
    """The demo's table: per workflow, rows complete and in error. (Its retried column
    counts the runs that returned by the time the pipeline drained, so it may lag.)"""
    rows = re.findall(r"^(\w+)\s+(\d+)\s+(\d+)\s+\d+\s+[\d.]+$", output, re.MULTILINE)
    return [" ".join(row) for row in rows]


async def test_the_demo_drains_as_it_does_directly(
    settings: curate.CurateSettings, database_url: str, schema: str, admin_engine: AsyncEngine
) -> None:
    """The same counts as on a direct connection, each flaky article retried once, and no
    traceback (the demo's malformed sitemap is a NonRetryableError: one line)."""
    direct = {**os.environ, "CURATE_DATABASE_URL": database_url, "CURATE_DATABASE_SCHEMA": schema}
    direct_output = "".join(await curate_demo(direct))
    assert settings.database_url is not None
    bounced = {**direct, "CURATE_DATABASE_URL": settings.database_url}
    output = "".join(await curate_demo({**bounced, "CURATE_DATABASE_POOLING": "transaction"}))

    assert len(summary(output)) == 4
    assert summary(output) == summary(direct_output)
    async with admin_engine.connect() as conn:
        retried = await conn.scalar(
            text(f"SELECT count(*) FROM {schema}.pages WHERE page_curation_attempts = 2")
        )
    assert retried == DemoSite(domains=3).flaky_article_count
    assert "Traceback" not in output and "Traceback" not in direct_output, output[-3000:]
    assert "NonRetryableError: malformed sitemap XML" in output
    assert output.count(PICKUP_OFF) == 1


# --- instant pick-up --------------------------------------------------------------------------


async def test_notify_through_pgbouncer_reaches_a_direct_listener(
    settings: curate.CurateSettings, database_url: str, log_lines: list[str]
) -> None:
    listening = settings.model_copy(update={"listen_database_url": database_url})
    runtime = curate.configure(listening)
    engine = await runtime.database.engine()
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await insert_items(engine, 1, status=None)
    work = Workflow("work", model=Item, service=noop, interval_seconds=60.0)
    try:
        start(work)
        notifier = runtime.notifier
        assert notifier is not None

        async def connected() -> bool:
            return notifier.connected.is_set()

        await wait_until(connected, what="the LISTEN connection")
        sessions = await runtime.database.sessionmaker()
        async with sessions() as session, session.begin():  # NOTIFY through PgBouncer
            await work.queue(session, [1])
        # The next poll is a minute away: a row done sooner was woken by NOTIFY.
        await wait_until(complete(engine, 1), seconds=30, what="the row Complete")
    finally:
        await scheduling.shutdown_scheduler()
        await runtime.close()
    assert not [line for line in log_lines if PICKUP_OFF in line]


async def test_without_a_listen_url_polling_carries_on_after_one_warning(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    await insert_items(engine, 1, status=None)
    work = Workflow("work", model=Item, service=noop, interval_seconds=0.2)
    start(work)
    try:
        assert runtime.notifier is None
        sessions = await runtime.database.sessionmaker()
        async with sessions() as session, session.begin():
            await work.queue(session, [1])
        await wait_until(complete(engine, 1), seconds=10, what="the row Complete by polling")
    finally:
        await scheduling.shutdown_scheduler()
    [warning] = [line for line in log_lines if PICKUP_OFF in line]
    assert "CURATE_LISTEN_DATABASE_URL" in warning and "WARNING" in warning


def start(work: Workflow) -> None:
    """Add the workflow's job to the scheduler and start it."""

    async def process_pending_works() -> None:
        await work.run()

    scheduling.add_workflow_job(work, process_pending_works)
    scheduling.start_scheduler()


def complete(engine: AsyncEngine, count: int) -> Callable[[], Awaitable[bool]]:
    async def done() -> bool:
        return (await status_counts(engine))["Complete"] == count

    return done


# --- session mode through PgBouncer, and the settings -----------------------------------------


@pytest.mark.parametrize(
    ("pooling", "with_schema", "failure"),
    [
        ("session", False, 'InvalidSQLStatementNameError: prepared statement "__asyncpg_stmt_'),
        ("session", True, "unsupported startup parameter: search_path"),
        ("transaction", False, None),
    ],
)
async def test_session_mode_through_pgbouncer_fails(
    pgbouncer: PgBouncer,
    curate_database: str,
    pooling: Literal["session", "transaction"],
    with_schema: bool,
    failure: str | None,
) -> None:
    """Today's behaviour (session, the default) through a transaction pooler: named
    statements meet other clients' server connections, or PgBouncer refuses the schema as
    a startup parameter. The same run in transaction mode completes every row (and, with
    no schema to set, runs curate's single statements outside a transaction)."""
    direct = create_async_engine(curate_database)
    try:
        async with direct.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await insert_items(direct, 100)
        settings = curate.CurateSettings(
            database_url=pgbouncer.url(curate_database),
            database_schema="public" if with_schema else None,
            database_pooling=pooling,
            pool_size=5,
            # The claim is what meets the pooler here: the history's look for its table,
            # through SQLAlchemy, would otherwise often meet it first (DBAPIError).
            attempt_history="off",
        )
        work = Workflow("work", model=Item, service=noop, batch_size=5, concurrency=4)
        async with worker_runtimes(settings, WORKERS) as workers:
            results = await asyncio.gather(*(worker.run(work) for worker in workers))
        counts = await status_counts(direct)
    finally:
        await direct.dispose()
    errors = [error for result in results for error in result.errors]
    if failure is None:
        assert (errors, counts) == ([], {"Complete": 100})
    else:
        print(f"{pooling} mode through PgBouncer: {dict(counts)}; first error: {errors[0]}")
        assert any(failure in error for error in errors), errors
        assert counts["Complete"] < 100


@pytest.mark.parametrize("name", ["statement_cache_size", "prepared_statement_cache_size"])
@pytest.mark.parametrize("variable", ["CURATE_DATABASE_URL", "CURATE_DATABASE_CONNECT_ARGS"])
async def test_a_statement_cache_is_refused_in_transaction_mode(
    settings: curate.CurateSettings, engine: AsyncEngine, variable: str, name: str
) -> None:
    """A cache turned on is refused, naming where, rather than overruled; the same
    parameter at 0 is accepted, and an item completes through PgBouncer with it."""
    assert settings.database_url is not None

    def with_cache(size: int, pooling: str = "transaction") -> curate.CurateSettings:
        given: dict[str, Any] = {"database_connect_args": {name: size}}
        if variable == "CURATE_DATABASE_URL":
            given = {"database_url": f"{settings.database_url}?{name}={size}"}
        return curate.CurateSettings(
            **{**settings.model_dump(), **given, "database_pooling": pooling}
        )

    with pytest.raises(curate.ConfigurationError) as refusal:
        with_cache(100)
    assert f"{variable}: {name}=" in str(refusal.value)
    assert "cannot be used with CURATE_DATABASE_POOLING=transaction" in str(refusal.value)
    assert with_cache(100, pooling="session")  # a direct connection may cache

    runtime = curate.Runtime(with_cache(0))
    try:
        await insert_items(engine, 1)
        assert (await Workflow("work", model=Item, service=noop).run(runtime)).completed == 1
    finally:
        await runtime.close()


def test_unknown_pooling_and_a_bad_listen_url_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_DATABASE_POOLING", "statement")
    with pytest.raises(curate.ConfigurationError, match="CURATE_DATABASE_POOLING='statement'"):
        curate.CurateSettings()
    monkeypatch.setenv("CURATE_DATABASE_POOLING", "transaction")
    monkeypatch.setenv("CURATE_LISTEN_DATABASE_URL", "postgresql://db/app?statement_cache=0")
    with pytest.raises(
        curate.ConfigurationError,
        match="CURATE_LISTEN_DATABASE_URL: unknown query parameter statement_cache",
    ):
        curate.CurateSettings()
    monkeypatch.setenv("CURATE_LISTEN_DATABASE_URL", "postgresql://db/app")
    assert curate.CurateSettings().listen_database_url == "postgresql+asyncpg://db/app"
