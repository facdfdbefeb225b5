"""Pause, resume and the rate limit, held in the database for every worker at once.

"Two workers" are two `Runtime` objects with their own worker id, engine and connections,
as two processes would have; the CLI tests run the installed `curate` script.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import Workflow, operations, scheduling
from curate.testing import wait_until
from tests.executions import ExecutionLog
from tests.helpers import create_table, insert_items, noop, status_counts
from tests.models import Item
from tests.test_cli import Curate, assert_one_line_error, cli, env  # noqa: F401 (fixtures)
from tests.test_fastapi import client, require_token, router_app

RATE = 2.0
BURST = 2  # curate.engine.controls.burst(RATE)


@pytest.fixture
async def other(settings: curate.CurateSettings) -> AsyncIterator[curate.Runtime]:
    """A second worker on the same database and schema."""
    rt = curate.Runtime(settings.model_copy(update={"worker_id": "other-worker"}))
    yield rt
    await rt.close()


@pytest.fixture
def executions() -> ExecutionLog:
    """The starts of the services both workers run."""
    return ExecutionLog(Item, "work")


async def queued_and_complete(engine: AsyncEngine) -> tuple[int, int]:
    counts = await status_counts(engine)
    return counts["Queued"], counts["Complete"]


async def test_a_paused_workflow_is_claimed_by_no_worker_until_resumed(
    runtime: curate.Runtime, other: curate.Runtime, engine: AsyncEngine, executions: ExecutionLog
) -> None:
    work = Workflow("work", model=Item, service=executions.service(noop))
    await insert_items(engine, 6)

    assert await operations.pause_workflow(engine, work, "maintenance") is True
    assert await operations.pause_workflow(engine, work, "again") is False  # keeps its reason
    paused = await asyncio.gather(runtime.run(work), other.run(work))
    assert [r.claimed for r in paused] == [0, 0]
    assert await queued_and_complete(engine) == (6, 0)
    assert await executions.counts() == {}

    assert await operations.resume_workflow(engine, work) is True
    assert await operations.resume_workflow(engine, work) is False
    resumed = await asyncio.gather(runtime.run(work), other.run(work))  # same runtimes
    assert sum(r.completed for r in resumed) == 6
    assert await queued_and_complete(engine) == (0, 6)
    await executions.assert_once_each(range(1, 7))


async def test_resume_wakes_listening_workers_at_once(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """The scheduler polls once a minute: rows done within seconds were woken by NOTIFY."""
    work = Workflow("work", model=Item, service=noop, interval_seconds=60.0)

    async def process_pending_works() -> None:
        await work.run()

    await insert_items(engine, 3)
    await operations.pause_workflow(engine, work)
    scheduling.add_workflow_job(work, process_pending_works)
    scheduling.start_scheduler()  # its first run starts now
    try:

        async def first_run_found_it_paused() -> bool:
            return "work" in runtime.stats  # a run ended, having claimed nothing

        await wait_until(first_run_found_it_paused, what="the first run to see the pause")
        notifier = runtime.notifier
        assert notifier is not None

        async def listening() -> bool:
            return notifier.connected.is_set()

        await wait_until(listening, what="the LISTEN connection")
        assert await queued_and_complete(engine) == (3, 0)

        await operations.resume_workflow(engine, work)

        async def all_complete() -> bool:
            return await queued_and_complete(engine) == (0, 3)

        await wait_until(all_complete, seconds=10, what="3 rows Complete (a poll is a minute away)")
    finally:
        await scheduling.shutdown_scheduler()


async def test_pausing_mid_run_stops_further_claims_and_running_items_finish(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    started: list[Any] = []
    release = asyncio.Event()

    async def held(item_id: Any, session: AsyncSession) -> None:
        started.append(item_id)
        await release.wait()

    work = Workflow("work", model=Item, service=held, batch_size=2, concurrency=2)
    await insert_items(engine, 10)
    run = asyncio.create_task(runtime.run(work))

    async def two_running_and_the_next_batch_claimed() -> bool:
        return len(started) == 2 and (await status_counts(engine))["Processing"] == 4

    await wait_until(two_running_and_the_next_batch_claimed, what="4 rows claimed, 2 running")
    await operations.pause_workflow(engine, work, "mid-run")
    release.set()
    result = await asyncio.wait_for(run, 20)

    assert (result.claimed, result.completed) == (4, 4)  # the claimed batch ran, no more
    assert await queued_and_complete(engine) == (6, 4)


# --- rate limit ------------------------------------------------------------------------------


@pytest.fixture
async def starts(engine: AsyncEngine) -> Table:
    """One row per service start, stamped with the database's clock."""
    return await create_table(
        engine,
        "starts",
        Column("item_id", Integer),
        Column("at", DateTime(timezone=True), server_default=text("clock_timestamp()")),
    )


@pytest.fixture
async def claims(engine: AsyncEngine) -> Table:
    """One row per claim of an item, stamped by a trigger with the database's clock as
    the claim's UPDATE sets it Processing: what the rate limit bounds, free of the time a
    busy machine takes to start the service."""
    table = await create_table(
        engine,
        "claims",
        Column("item_id", Integer),
        Column("at", DateTime(timezone=True), server_default=text("clock_timestamp()")),
    )
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION record_claim() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN INSERT INTO claims (item_id) VALUES (NEW.id); RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER record_claim AFTER UPDATE OF work_status ON items FOR EACH ROW"
                " WHEN (NEW.work_status = 'Processing' AND OLD.work_status <> 'Processing')"
                " EXECUTE FUNCTION record_claim()"
            )
        )
    return table


def recording(starts: Table) -> Callable[[Any, AsyncSession], Awaitable[None]]:
    async def record_start(item_id: Any, session: AsyncSession) -> None:
        await session.execute(insert(starts).values(item_id=item_id))

    return record_start


async def stamped_times(engine: AsyncEngine, stamps: Table) -> list[datetime]:
    async with engine.connect() as conn:
        return list((await conn.scalars(select(stamps.c.at).order_by(stamps.c.at))).all())


def busiest_second(times: list[datetime]) -> int:
    """The most stamps in any window of one second."""
    return max(sum(0 <= (t - s).total_seconds() < 1 for t in times) for s in times)


async def test_the_rate_limit_holds_across_two_workers(
    runtime: curate.Runtime,
    other: curate.Runtime,
    engine: AsyncEngine,
    claims: Table,
    executions: ExecutionLog,
) -> None:
    """A full bucket of 2, then a token every 0.5 s: a second holds at most 3 claims (the
    bucket, and the token half-way through), so a bound of 4 leaves a token's interval
    for the claim statement to follow its grant on a busy machine, and 5 is a real leak."""
    limited = Workflow(
        "work", model=Item, service=executions.service(noop), rate_limit=RATE, concurrency=10
    )
    await insert_items(engine, 10)

    results = await asyncio.gather(runtime.run(limited), other.run(limited))

    assert await queued_and_complete(engine) == (0, 10)
    assert all(r.completed for r in results), results  # both workers took a share
    await executions.assert_once_each(range(1, 11))
    times = await stamped_times(engine, claims)
    assert len(times) == 10
    assert busiest_second(times) <= RATE + BURST, times
    # 2 at once from the full bucket, then 8 more at 2 a second: 4 s in all.
    assert (times[-1] - times[0]).total_seconds() >= 3.5, times


async def test_an_unlimited_workflow_is_not_slowed(
    runtime: curate.Runtime,
    other: curate.Runtime,
    engine: AsyncEngine,
    starts: Table,
    executions: ExecutionLog,
) -> None:
    unlimited = Workflow(
        "work", model=Item, service=executions.service(recording(starts)), concurrency=10
    )
    await insert_items(engine, 15)

    await asyncio.gather(runtime.run(unlimited), other.run(unlimited))
    await executions.assert_once_each(range(1, 16))

    times = await stamped_times(engine, starts)
    assert len(times) == 15
    assert (times[-1] - times[0]).total_seconds() < 0.5, times


async def test_waiting_for_a_token_ends_with_the_budget_or_at_stop(
    runtime: curate.Runtime, other: curate.Runtime, engine: AsyncEngine, executions: ExecutionLog
) -> None:
    """One token every 100 s: a run waits for the next one only within its budget, and
    shutdown ends the wait."""
    await insert_items(engine, 3)
    service = executions.service(noop)
    short = Workflow("work", model=Item, service=service, rate_limit=0.01, run_max_seconds=5)

    began = time.monotonic()
    first = await runtime.run(short)
    assert first.completed == 1 and time.monotonic() - began < 4

    long = Workflow("work", model=Item, service=service, rate_limit=0.01, run_max_seconds=600)
    async with engine.begin() as conn:  # a full bucket again
        await conn.execute(text("UPDATE curate_workflow_controls SET tokens = 1"))
    run = asyncio.create_task(other.run(long))

    async def one_more_done() -> bool:
        return (await status_counts(engine))["Complete"] == 2

    await wait_until(one_more_done, what="the second row")
    assert not run.done()  # waiting for the next token, 100 s away
    began = time.monotonic()
    assert await other.stop_runs(grace_seconds=10) is True
    assert (await run).completed == 1 and time.monotonic() - began < 2
    assert await queued_and_complete(engine) == (1, 2)
    await executions.assert_once_each([1, 2])


# --- the command line ------------------------------------------------------------------------


async def test_pause_resume_and_status_on_the_command_line(
    runtime: curate.Runtime,
    engine: AsyncEngine,
    cli: Curate,  # noqa: F811
) -> None:
    await insert_items(engine, 2)

    paused = await cli("pause", "work", "--reason", "supplier down (ana)")
    assert (paused.code, paused.out) == (
        0,
        "paused work: no worker claims its rows until resumed\n",
    ), paused
    again = await cli("pause", "work")
    assert (again.code, again.out) == (0, "work was already paused\n"), again

    limits = {"WORK_SCHEDULER_RATE_LIMIT": "2.5"}
    as_json, table = await asyncio.gather(
        cli("status", "--json", **limits), cli("status", **limits)
    )
    work, seed = json.loads(as_json.out)["workflows"]
    assert datetime.fromisoformat(work.pop("paused_at"))
    assert {k: work[k] for k in ("paused", "paused_reason", "rate_limit")} == {
        "paused": True,
        "paused_reason": "supplier down (ana)",
        "rate_limit": 2.5,
    }
    assert {k: seed[k] for k in ("paused", "paused_at", "paused_reason", "rate_limit")} == {
        "paused": False,
        "paused_at": None,
        "paused_reason": None,
        "rate_limit": None,
    }
    assert table.code == 0, table
    lines = [" ".join(line.split()) for line in table.out.splitlines()]
    assert any(re.fullmatch(r"work \(paused\) 2 0 0 0 .*", x) for x in lines), table.out
    assert any(
        re.fullmatch(r"work: paused \d+s ago: supplier down \(ana\); rate limit 2\.5/s", x)
        for x in lines
    ), table.out
    assert any(re.fullmatch(r"seed( \d+| n/a)+", x) for x in lines), table.out

    ran = await cli("run", "--workflow", "work", "--once")
    assert ran.out == "work: 0 complete, 0 failed, 0 retried\n", ran

    resumed = await cli("resume", "work")
    assert (resumed.code, resumed.out) == (0, "resumed work\n"), resumed
    not_paused = await cli("resume", "work")
    assert (not_paused.code, not_paused.out) == (0, "work was not paused\n"), not_paused
    ran = await cli("run", "--workflow", "work", "--once")
    assert ran.out == "work: 2 complete, 0 failed, 0 retried\n", ran
    after = json.loads((await cli("status", "--json")).out)["workflows"][0]
    assert (after["paused"], after["paused_reason"]) == (False, None)


async def test_pause_and_resume_reject_an_unknown_workflow(
    runtime: curate.Runtime,
    cli: Curate,  # noqa: F811
) -> None:
    results = await asyncio.gather(
        cli("pause", "nope"), cli("resume", "nope"), cli("pause"), cli("resume", "--help")
    )
    for result in results[:2]:
        assert_one_line_error(result, 2, "no workflow named nope; known: work, seed")
    assert results[2].code == 2 and "Missing argument 'NAME'" in results[2].err
    assert "Examples:\n    curate resume" in results[3].out


# --- the FastAPI router ----------------------------------------------------------------------


async def test_pause_and_resume_endpoints_are_guarded_like_requeue(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    unguarded = router_app()
    assert not any(p.endswith(("/pause", "/resume")) for p in unguarded.openapi()["paths"])
    app = router_app(requeue_auth=require_token)
    async with client(app) as http:
        refused = await http.post("/curate/workflows/work/pause", json={"reason": "x"})
        assert refused.status_code == 401

        http.headers["X-Token"] = "secret"
        unknown = await http.post("/curate/workflows/nope/pause", json={})
        assert unknown.status_code == 404
        paused = await http.post("/curate/workflows/work/pause", json={"reason": "deploy"})
        assert paused.json() == {"workflow": "work", "paused": True, "changed": True}
        [work, seed] = (await http.get("/curate/workflows")).json()["workflows"]
        assert (work["paused"], work["paused_reason"], seed["paused"]) == (True, "deploy", False)
        page = (await http.get("/curate/dashboard")).text
        assert page.count("data-paused") == 1 and "— deploy" in page

        resumed = await http.post("/curate/workflows/work/resume", json={})
        assert resumed.json() == {"workflow": "work", "paused": False, "changed": True}
        again = await http.post("/curate/workflows/work/resume", json={})
        assert again.json() == {"workflow": "work", "paused": False, "changed": False}
        assert "data-paused" not in (await http.get("/curate/dashboard")).text
