"""The shared scheduler: the only module that imports APScheduler (3.x).

One `AsyncIOScheduler` (UTC) per process, shared by every workflow, started with the app.
Each workflow's ``setup_<name>_scheduler()`` calls `add_workflow_job`; the app calls
`start_scheduler()` after the setups and ``await shutdown_scheduler()`` when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from curate.runtime import Runtime, get_runtime
from curate.workflow import Workflow

JobFunction = Callable[[], Awaitable[Any]]

MISFIRE_GRACE_TIME: int | None = None
"""No limit: a run that starts late still runs (APScheduler's default of 1 s drops it);
with ``coalesce=True`` several missed runs become one."""

_scheduler: AsyncIOScheduler | None = None


def get_scheduler() -> AsyncIOScheduler:
    """The process's shared scheduler, created on first use."""
    global _scheduler
    if _scheduler is None:
        _scheduler = AsyncIOScheduler(timezone=UTC)
        _scheduler.add_listener(_log_job_error, EVENT_JOB_ERROR)
        _scheduler.add_listener(_log_missed, EVENT_JOB_MISSED)
        _scheduler.add_listener(_log_busy, EVENT_JOB_MAX_INSTANCES)
    return _scheduler


def add_interval_job(
    function: JobFunction,
    *,
    job_id: str,
    interval_seconds: float,
    max_instances: int = 1,
) -> Job:
    """Run ``function`` every ``interval_seconds`` on the shared scheduler."""
    scheduler = get_scheduler()
    if scheduler.get_job(job_id) is not None:
        # replace_existing only applies once the scheduler runs; before that, do it here.
        scheduler.remove_job(job_id)
    return scheduler.add_job(
        function,
        "interval",
        seconds=interval_seconds,
        id=job_id,
        name=job_id,
        max_instances=max_instances,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_TIME,
        replace_existing=True,
        next_run_time=datetime.now(UTC),  # first run at start-up, not one interval later
    )


def job_for(workflow: Workflow, runtime: Runtime) -> JobFunction:
    """A thin ``process_pending_<name>s`` job, for processes that have no scheduler
    module of their own to import (``curate run``, the FastAPI lifespan)."""

    async def process_pending() -> None:
        await runtime.run(workflow)

    process_pending.__name__ = process_pending.__qualname__ = workflow.job_id
    return process_pending


def add_workflow_job(
    workflow: Workflow, function: JobFunction, runtime: Runtime | None = None
) -> Job:
    """Register ``process_pending_<name>s`` for ``workflow``; bad settings raise here.

    Settings and the table's columns are checked now, so a mistake stops the app at
    start-up instead of failing every scheduled run.
    """
    runtime = runtime or get_runtime()
    settings = runtime.workflow_settings(workflow)
    runtime.register(workflow)  # checks the table: a missing column raises here
    job = add_interval_job(
        function,
        job_id=workflow.job_id,
        interval_seconds=settings.interval_seconds,
        max_instances=settings.max_instances,
    )
    logger.info(
        "workflow {} scheduled every {:g} s (job {})",
        workflow.name,
        settings.interval_seconds,
        workflow.job_id,
    )
    return job


RESCUE_JOB_ID = "curate_rescue_expired_leases"


def start_scheduler(runtime: Runtime | None = None) -> AsyncIOScheduler:
    """Start the shared scheduler on the running event loop (idempotent).

    Adds the rescuer job: every ``CURATE_RESCUE_INTERVAL_SECONDS`` it returns the rows of
    dead workers to the queue (one worker at a time does it, by an advisory lock). With
    ``CURATE_LISTEN_NOTIFY`` (the default) it also listens for NOTIFY, so a queued row
    starts at once instead of at the next poll.
    """
    runtime = runtime or get_runtime()
    runtime.stopping = False
    add_interval_job(
        runtime.rescue,
        job_id=RESCUE_JOB_ID,
        interval_seconds=runtime.settings.rescue_interval_seconds,
    )
    scheduler = get_scheduler()
    if not scheduler.running:
        scheduler.start()
        if runtime.settings.listen_notify:
            runtime.begin_pickup()
    return scheduler


async def shutdown_scheduler(
    grace_seconds: float | None = None, runtime: Runtime | None = None
) -> None:
    """Stop starting runs, let running ones finish, then stop.

    Runs still busy after ``grace_seconds`` (default: ``CURATE_SHUTDOWN_GRACE_SECONDS``)
    are cancelled; their items go back to Queued.
    """
    global _scheduler
    scheduler = _scheduler
    if scheduler is None:
        return
    if scheduler.running:
        scheduler.pause()
    runtime = runtime or get_runtime()
    await runtime.stop_pickup()
    if grace_seconds is None:
        grace_seconds = runtime.settings.shutdown_grace_seconds
    await runtime.stop_runs(grace_seconds)
    if scheduler.running:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # APScheduler finishes shutting down on the next loop turn
    _scheduler = None


def reset_scheduler() -> None:
    """Forget the shared scheduler and its jobs (tests)."""
    global _scheduler
    if _scheduler is not None and _scheduler.running:
        with contextlib.suppress(RuntimeError):  # its event loop may be closed already
            _scheduler.shutdown(wait=False)
    _scheduler = None


def _log_job_error(event: JobExecutionEvent) -> None:
    logger.opt(exception=event.exception).error("scheduler job {} raised", event.job_id)


def _log_missed(event: JobEvent) -> None:
    logger.warning("scheduler job {} missed its run time", event.job_id)


def _log_busy(event: JobEvent) -> None:
    logger.debug("scheduler job {} skipped a run: its previous run is still going", event.job_id)
