"""curate's shared scheduler driven as an app drives its own `AsyncIOScheduler`.

The app here is shaped like the seed's: a ``scheduler_instance`` module that re-exports
curate's instance and keeps its plain ``start_scheduler()``/``shutdown_scheduler()``,
setup functions calling ``scheduler.add_job(job, "interval", minutes=...)``, and a lifespan
that starts first, adds the jobs, and at its end shuts down without awaiting.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED
from fastapi import FastAPI
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import run_job_loop, scheduling
from curate.scheduling import scheduler
from curate.testing import wait_until
from tests.helpers import noop
from tests.models import SeedItem, SeedStatus

Service = Callable[[uuid.UUID, AsyncSession], Awaitable[None]]

JOB_ID = "process_seed_items"
INTERVAL_MINUTES = 0.002  # 0.12 s: the first run comes one interval after the job is added
INTERRUPTED = "Interrupted: the worker shut down while the item ran"


# --- the app's scheduler_instance.py: curate's instance, the app's own functions ----------


def start_scheduler() -> None:
    """Starts the shared scheduler if it's not already running."""
    if not scheduler.running:
        scheduler.start()


def shutdown_scheduler() -> None:
    """Shuts down the shared scheduler."""
    if scheduler.running:
        scheduler.shutdown(wait=False)


# --- the app: one scheduler module and the lifespan, as in the seed's main.py -------------


def seed_app(service: Service) -> FastAPI:
    """The app, its items processed by ``service``."""

    async def process_seed_items() -> None:
        await run_job_loop(
            model=SeedItem,
            status_enum=SeedStatus,
            queued_status=SeedStatus.queued,
            processing_status=SeedStatus.processing,
            completed_status=SeedStatus.complete,
            failed_status=SeedStatus.error,
            processing_function=service,
            batch_size=10,
        )

    def setup_seed_item_scheduler() -> None:
        scheduler.add_job(
            process_seed_items,
            "interval",
            minutes=INTERVAL_MINUTES,
            id=JOB_ID,
            name="Process Seed Items",
            replace_existing=True,
            max_instances=1,
            misfire_grace_time=1800,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start_scheduler()
        setup_seed_item_scheduler()
        yield
        shutdown_scheduler()

    return FastAPI(lifespan=lifespan)


async def queue_seed_rows(engine: AsyncEngine, count: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(SeedItem),
            [{"id": uuid.uuid4(), "status": SeedStatus.queued} for _ in range(count)],
        )


async def statuses(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as conn:
        result = await conn.execute(select(SeedItem.status, func.count()).group_by(SeedItem.status))
        return Counter({status.value: count for status, count in result})


async def errors(engine: AsyncEngine) -> list[str | None]:
    async with engine.connect() as conn:
        return list((await conn.scalars(select(SeedItem.error).order_by(SeedItem.error))).all())


async def wait_for_statuses(engine: AsyncEngine, expected: dict[str, int]) -> None:
    async def reached() -> bool:
        return await statuses(engine) == expected

    await wait_until(reached, what=f"the rows to be {expected}")


async def test_the_scheduler_is_curates_and_runs_the_apps_jobs(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    assert scheduling.get_scheduler() is scheduler
    assert isinstance(scheduler, AsyncIOScheduler)
    await queue_seed_rows(engine, 5)
    app = seed_app(noop)

    async with app.router.lifespan_context(app):
        assert scheduler.running
        # A plain start() is curate's: the rescuer job came with it.
        assert scheduler.get_job(scheduling.RESCUE_JOB_ID) is not None
        await wait_for_statuses(engine, {"Complete": 5})

    await scheduling.shutdown_scheduler()  # waits for the stop the lifespan began
    assert not scheduler.running
    assert scheduler.get_jobs() == []  # the next start begins with the jobs added for it


async def test_the_plain_shutdown_requeues_what_is_still_running(
    runtime: curate.Runtime, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "shutdown_grace_seconds", 0.2)
    started = asyncio.Event()

    async def hangs(item_id: uuid.UUID, session: AsyncSession) -> None:
        started.set()
        await asyncio.Event().wait()

    await queue_seed_rows(engine, 3)
    app = seed_app(hangs)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(started.wait(), timeout=20)

    # Right after the plain shutdown(), before anything else ran: no new runs, no claims.
    assert scheduler.state == STATE_PAUSED
    assert runtime.stopping
    # The two claimed but unstarted rows go back at once; the running one after the grace
    # period, cancelled; nothing is left Processing.
    await wait_for_statuses(engine, {"Queued": 3})
    assert await errors(engine) == [INTERRUPTED, None, None]
    await scheduling.shutdown_scheduler()
    assert not scheduler.running


async def test_when_the_loop_ends_first_the_rows_still_go_back_and_it_starts_again(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """As under uvicorn: the lifespan ends with the plain shutdown, then the event loop ends
    (``asyncio.run`` cancels what is left) well within the 30 s grace period."""

    def serve_until_an_item_runs() -> None:
        async def serve() -> None:
            started = asyncio.Event()

            async def hangs(item_id: uuid.UUID, session: AsyncSession) -> None:
                started.set()
                await asyncio.Event().wait()

            app = seed_app(hangs)
            async with app.router.lifespan_context(app):
                await asyncio.wait_for(started.wait(), timeout=20)

        asyncio.run(serve())

    await queue_seed_rows(engine, 3)
    await asyncio.to_thread(serve_until_an_item_runs)  # a loop of its own, ended now

    assert await statuses(engine) == {"Queued": 3}
    assert await errors(engine) == [INTERRUPTED, None, None]
    assert not scheduler.running

    # The same scheduler starts again, on this test's loop, and does the work.
    app = seed_app(noop)
    async with app.router.lifespan_context(app):
        await wait_for_statuses(engine, {"Complete": 3})
    await scheduling.shutdown_scheduler()


async def test_a_scheduler_whose_loop_closed_unstopped_starts_again(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    async def start_and_leave() -> None:
        start_scheduler()

    await asyncio.to_thread(asyncio.run, start_and_leave())
    assert not scheduler.running  # its loop is gone

    await queue_seed_rows(engine, 2)
    app = seed_app(noop)
    async with app.router.lifespan_context(app):
        await wait_for_statuses(engine, {"Complete": 2})
    await scheduling.shutdown_scheduler()


async def test_replace_existing_before_and_after_the_start(runtime: curate.Runtime) -> None:
    async def first() -> None: ...

    async def second() -> None: ...

    async def third() -> None: ...

    def add(job: Callable[[], Awaitable[None]]) -> None:
        scheduler.add_job(
            job,
            "interval",
            minutes=5,
            id=JOB_ID,
            replace_existing=True,
            max_instances=2,
            misfire_grace_time=1800,
        )

    add(first)
    add(second)
    assert [job.func for job in scheduler.get_jobs()] == [second]

    start_scheduler()
    added_at = datetime.now(UTC)
    add(third)
    [job] = [job for job in scheduler.get_jobs() if job.id == JOB_ID]
    assert job.func is third
    assert (job.max_instances, job.misfire_grace_time) == (2, 1800)
    # APScheduler's timing for a job added its way: the first run one interval later ...
    assert job.next_run_time >= added_at + timedelta(minutes=5)
    # ... curate's own interval jobs run at once.
    own = scheduling.add_interval_job(second, job_id="own", interval_seconds=300)
    assert own.next_run_time <= datetime.now(UTC)
    await scheduling.shutdown_scheduler()


async def test_shutdown_from_another_thread(runtime: curate.Runtime) -> None:
    start_scheduler()
    await asyncio.to_thread(scheduler.shutdown)

    async def stopped() -> bool:
        return not scheduler.running

    await wait_until(stopped, what="the scheduler to stop")


async def test_reset_forgets_every_job(runtime: curate.Runtime) -> None:
    async def job() -> None: ...

    scheduler.add_job(job, "interval", minutes=5, id=JOB_ID)
    start_scheduler()
    scheduling.reset_scheduler()
    assert not scheduler.running
    assert scheduler.get_jobs() == []

    start_scheduler()  # the jobs that were in the running store are gone too
    found = {job.id for job in scheduler.get_jobs()}
    assert found == {scheduling.RESCUE_JOB_ID, scheduling.STATS_JOB_ID}
    await scheduling.shutdown_scheduler()
