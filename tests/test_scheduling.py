"""The shared scheduler: job registration, options, runs, errors and graceful shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ConfigurationError, ProcessingStatus, Workflow, scheduling
from curate.testing import wait_until
from tests.helpers import insert_items, item_row, status_counts
from tests.models import Effect, Item


async def record_effect(item_id: int, session: AsyncSession) -> None:
    session.add(Effect(item_id=item_id))


Service = Callable[[int, AsyncSession], Awaitable[None]]

work = Workflow("work", model=Item, service=record_effect, interval_seconds=0.2, batch_size=5)


# A workflow module exactly as the convention has it (work_scheduler.py).
async def process_pending_works() -> None:
    """Job function: process items queued for the work workflow."""
    await work.run()


def setup_work_scheduler() -> None:
    """Adds the work job to the shared scheduler."""
    scheduling.add_workflow_job(work, process_pending_works)


def test_registration_uses_the_conventional_id_and_safe_options(runtime: curate.Runtime) -> None:
    setup_work_scheduler()
    setup_work_scheduler()  # registering again replaces, never duplicates

    jobs = scheduling.get_scheduler().get_jobs()
    assert [job.id for job in jobs] == ["process_pending_works"]
    [job] = jobs
    assert job.func is process_pending_works
    assert isinstance(job.trigger, IntervalTrigger)
    assert job.trigger.interval.total_seconds() == 0.2
    assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, None)
    assert str(scheduling.get_scheduler().timezone) == "UTC"


def test_interval_and_max_instances_come_from_the_environment(
    runtime: curate.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORK_SCHEDULER_INTERVAL_SECONDS", "45")
    monkeypatch.setenv("WORK_SCHEDULER_MAX_INSTANCES", "3")
    setup_work_scheduler()
    job = scheduling.get_scheduler().get_job("process_pending_works")
    assert job.trigger.interval.total_seconds() == 45
    assert job.max_instances == 3


def test_a_bad_setting_stops_setup(
    runtime: curate.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORK_SCHEDULER_INTERVAL_SECONDS", "soon")
    with pytest.raises(ConfigurationError, match="WORK_SCHEDULER_INTERVAL_SECONDS='soon'"):
        setup_work_scheduler()
    assert scheduling.get_scheduler().get_jobs() == []


async def test_the_scheduler_processes_queued_rows(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 12)
    setup_work_scheduler()
    scheduling.start_scheduler()

    async def all_complete() -> bool:
        return await status_counts(engine) == {"Complete": 12}

    await wait_until(all_complete, what="12 items Complete")
    await scheduling.shutdown_scheduler()


async def test_a_failing_job_is_logged_and_the_scheduler_keeps_running(
    runtime: curate.Runtime, log_lines: list[str]
) -> None:
    calls = 0

    async def broken_job() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("job defect")

    scheduling.add_interval_job(broken_job, job_id="process_pending_brokens", interval_seconds=0.05)
    scheduling.start_scheduler()

    async def ran_twice() -> bool:
        return calls >= 2

    await wait_until(ran_twice, what="two runs of the broken job")
    assert scheduling.get_scheduler().running
    assert any("process_pending_brokens raised" in line for line in log_lines)
    await scheduling.shutdown_scheduler()


async def start_three_items(engine: AsyncEngine, service: Service, batch_size: int) -> None:
    """Queue three items and start the scheduler on a workflow running ``service``."""
    flow = Workflow(
        "work", model=Item, service=service, interval_seconds=0.1, batch_size=batch_size
    )

    async def process_pending_works() -> None:
        await flow.run()

    await insert_items(engine, 3)
    scheduling.add_workflow_job(flow, process_pending_works)
    scheduling.start_scheduler()


async def test_shutdown_waits_for_the_running_item(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(item_id: int, session: AsyncSession) -> None:
        started.set()
        await release.wait()
        session.add(Effect(item_id=item_id))

    await start_three_items(engine, slow, batch_size=1)
    await asyncio.wait_for(started.wait(), timeout=10)

    shutdown = asyncio.create_task(scheduling.shutdown_scheduler(grace_seconds=10))

    async def claiming_stopped() -> bool:
        return runtime.stopping

    await wait_until(claiming_stopped, what="shutdown to begin")

    async def unstarted_item_handed_back() -> bool:
        return (await item_row(engine, 2)).work_status is ProcessingStatus.Queued

    # At once, not when the running item frees its slot:
    await wait_until(unstarted_item_handed_back, what="the unstarted item back in the queue")
    assert not shutdown.done()  # still waiting for the item in flight
    release.set()
    await asyncio.wait_for(shutdown, timeout=10)

    row = await item_row(engine, 1)
    assert row.work_status is ProcessingStatus.Complete
    # Shutdown stopped claiming; the item claimed but not started went back, uncounted.
    assert await status_counts(engine) == {"Complete": 1, "Queued": 2}
    assert (await item_row(engine, 2)).work_attempts == 0


async def test_shutdown_past_the_grace_period_requeues_everything_it_claimed(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    started = asyncio.Event()

    async def hangs(item_id: int, session: AsyncSession) -> None:
        started.set()
        await asyncio.Event().wait()

    await start_three_items(engine, hangs, batch_size=3)
    await asyncio.wait_for(started.wait(), timeout=10)

    await asyncio.wait_for(scheduling.shutdown_scheduler(grace_seconds=0.2), timeout=10)

    assert await status_counts(engine) == {"Queued": 3}
    running = await item_row(engine, 1)
    assert running.work_error == "Interrupted: the worker shut down while the item ran"
    assert running.work_attempts == 1  # it ran: the attempt counts
    assert [(await item_row(engine, i)).work_attempts for i in (2, 3)] == [0, 0]
