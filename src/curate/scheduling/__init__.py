"""The shared scheduler: the only module that imports APScheduler (3.x).

One `AsyncIOScheduler` (UTC) per process, `scheduler`, shared by every workflow and by the
app's own jobs, started with the app. Each workflow's ``setup_<name>_scheduler()`` calls
`add_workflow_job`, each periodic job `add_periodic_job`; the app calls `start_scheduler()`
after the setups and ``await shutdown_scheduler()`` when it stops. An app that keeps its
own ``scheduler_instance.py`` re-exports `scheduler` and keeps calling ``scheduler.start()``
and ``scheduler.shutdown(wait=False)``: those do curate's start and graceful stop. The
schedules of periodic jobs (crontab, epoch-aligned interval) are in `schedules`, since
computing cron times needs APScheduler too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.job import Job
from apscheduler.schedulers import SchedulerAlreadyRunningError, SchedulerNotRunningError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from curate.logs import logger, propagate_to_logging
from curate.runtime import Runtime, get_runtime
from curate.scheduling.schedules import EPOCH as EPOCH  # re-exported for curate.periodic
from curate.scheduling.schedules import CronSchedule as CronSchedule
from curate.scheduling.schedules import IntervalSchedule as IntervalSchedule
from curate.scheduling.schedules import Schedule as Schedule
from curate.scheduling.schedules import ScheduleTrigger
from curate.workflow import Workflow

if TYPE_CHECKING:
    from curate.periodic import PeriodicJob, PeriodicRunner

JobFunction = Callable[[], Awaitable[Any]]

MISFIRE_GRACE_TIME: int | None = None
"""No limit: a run that starts late still runs (APScheduler's default of 1 s drops it);
with ``coalesce=True`` several missed runs become one."""

_periodic_runners: dict[str, PeriodicRunner] = {}
"""The periodic jobs of the shared scheduler, by name: shutdown waits for their runs."""

RESCUE_JOB_ID = "curate_rescue_expired_leases"
STATS_JOB_ID = "curate_flush_workflow_stats"


def _log_job_error(event: JobExecutionEvent) -> None:
    logger.opt(exception=event.exception).error("scheduler job {} raised", event.job_id)


def _log_missed(event: JobEvent) -> None:
    logger.warning("scheduler job {} missed its run time", event.job_id)


def _log_busy(event: JobEvent) -> None:
    logger.debug("scheduler job {} skipped a run: its previous run is still going", event.job_id)


class SharedScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """APScheduler's `AsyncIOScheduler` whose plain ``start()`` and ``shutdown()`` are
    curate's, so an app that drives its scheduler the usual way gets crash rescue and a
    graceful stop; it can be started and stopped again, on another event loop too."""

    _eventloop: asyncio.AbstractEventLoop | None
    state: int

    def __init__(self) -> None:
        super().__init__(timezone=UTC)
        self.add_listener(_log_job_error, EVENT_JOB_ERROR)
        self.add_listener(_log_missed, EVENT_JOB_MISSED)
        self.add_listener(_log_busy, EVENT_JOB_MAX_INSTANCES)
        self._runtime: Runtime | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._started_loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        """Started and not shut down; false once its event loop is closed (a test's loop,
        ``asyncio.run``), shut down or not."""
        loop = self._eventloop
        return bool(super().running) and not (loop is not None and loop.is_closed())

    def add_job(self, *args: Any, **kwargs: Any) -> Job:
        """APScheduler's `add_job`; before the start too, ``replace_existing=True`` replaces
        a job of the same id at once (APScheduler keeps both until the start)."""
        self._drop_closed_loop()
        job = super().add_job(*args, **kwargs)
        if self.state == STATE_STOPPED and kwargs.get("replace_existing"):
            with self._jobstores_lock:
                self._pending_jobs[:] = [
                    pending
                    for pending in self._pending_jobs
                    if pending[0] is job or pending[0].id != job.id
                ]
        return job

    def start(self, paused: bool = False, *, runtime: Runtime | None = None) -> None:
        """Start on the running event loop, with curate's rescuer job (every
        ``CURATE_RESCUE_INTERVAL_SECONDS``, one worker at a time, by an advisory lock), the
        job that writes the dashboard's stats (every ``CURATE_STATS_INTERVAL_SECONDS``) and,
        with ``CURATE_LISTEN_NOTIFY``, instant pick-up (LISTEN) for the registered workflows.

        ``runtime`` defaults to `get_runtime()`; the shutdown uses the same one. With
        ``CURATE_LOG_TO_LOGGING``, curate's log lines also go to standard logging.
        """
        loop = asyncio.get_running_loop()
        self._drop_closed_loop()
        if self.running:
            raise SchedulerAlreadyRunningError
        if loop is not self._started_loop:
            # Runs counted against max_instances on an earlier loop never report back.
            for executor in self._executors.values():
                executor._instances.clear()
        self._eventloop = self._started_loop = loop
        self._stopping = None
        runtime = self._runtime = runtime or get_runtime()
        if runtime.settings.log_to_logging:
            propagate_to_logging()
        runtime.stopping = False
        add_interval_job(
            runtime.rescue,
            job_id=RESCUE_JOB_ID,
            interval_seconds=runtime.settings.rescue_interval_seconds,
        )
        add_interval_job(
            runtime.flush_stats,
            job_id=STATS_JOB_ID,
            interval_seconds=runtime.settings.stats_interval_seconds,
        )
        super().start(paused)
        if runtime.settings.listen_notify:
            runtime.begin_pickup()

    def shutdown(self, wait: bool = True) -> None:
        """Start no run and claim nothing from now on, then stop gracefully in a task on the
        scheduler's loop (`begin_shutdown`); ``await shutdown_scheduler()`` waits for it.

        ``wait`` changes nothing: code on the loop cannot wait for it without blocking it
        (APScheduler's asyncio executor ignores it too).
        """
        loop = self._eventloop
        if not self.running or loop is None:
            raise SchedulerNotRunningError
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self.begin_shutdown()
        else:  # from another thread, as APScheduler allows
            loop.call_soon_threadsafe(self.begin_shutdown)

    def begin_shutdown(
        self, grace_seconds: float | None = None, runtime: Runtime | None = None
    ) -> asyncio.Task[None]:
        """Pause and stop claiming now; return the task that stops gracefully (the one
        already under way, if any): it stops instant pick-up, gives running runs
        ``grace_seconds`` (default ``CURATE_SHUTDOWN_GRACE_SECONDS``) and cancels the rest,
        whose items go back to Queued, then shuts APScheduler down. Call it on the loop.
        """
        if self._stopping is None:
            runtime = runtime or self._runtime or get_runtime()
            self.pause()
            runtime.stop_claiming()
            if grace_seconds is None:
                grace_seconds = runtime.settings.shutdown_grace_seconds
            self._stopping = asyncio.get_running_loop().create_task(
                self._stop_gracefully(runtime, grace_seconds)
            )
        return self._stopping

    async def _stop_gracefully(self, runtime: Runtime, grace_seconds: float) -> None:
        """Cancelled with its loop (``asyncio.run`` ending), it still stops the scheduler,
        and leaves the runs to the loop: cancelled by it, they put their items back to
        Queued, which a second cancellation (APScheduler's, of running jobs) would cut off."""
        loop_ending = False
        try:
            await runtime.stop_pickup()
            await asyncio.gather(
                runtime.stop_runs(grace_seconds),
                *(runner.stop(grace_seconds) for runner in list(_periodic_runners.values())),
            )
            await runtime.flush_stats()  # the outcomes since the last flush
        except asyncio.CancelledError:
            loop_ending = True
            raise
        finally:
            if self._stopping is asyncio.current_task():  # not a stop that `reset` dropped
                self._halt(cancel_jobs=not loop_ending)

    def _halt(self, cancel_jobs: bool = True) -> None:
        """APScheduler's shutdown, now: its own waits for a later turn of the loop, which a
        loop that is ending may not take. The jobs are forgotten, so a job of an earlier
        start never runs its old function in the next one: the setup functions add them
        again."""
        self._stop_timer()
        self._eventloop = None
        with self._jobstores_lock:
            self._pending_jobs.clear()
            for store in self._jobstores.values():
                store.remove_all_jobs()
        _periodic_runners.clear()
        if self.state == STATE_STOPPED:
            return
        if cancel_jobs:
            BaseScheduler.shutdown(self, wait=False)  # cancels the jobs still running
        else:
            self.state = STATE_STOPPED

    def _drop_closed_loop(self) -> None:
        """Stopped, as by a shutdown, if its event loop closed while it ran."""
        if super().running and not self.running:
            self._halt(cancel_jobs=False)

    def reset(self) -> None:
        """Stop at once, without grace, and forget every job (tests)."""
        stopping, self._stopping, self._runtime = self._stopping, None, None
        if stopping is not None:
            with contextlib.suppress(RuntimeError):  # its event loop may be closed already
                stopping.cancel()
        self._drop_closed_loop()
        self._halt()


scheduler = SharedScheduler()
"""The process's shared scheduler: an app's ``scheduler_instance.py`` re-exports it."""


def get_scheduler() -> SharedScheduler:
    """The process's shared scheduler (`scheduler`)."""
    return scheduler


def add_interval_job(
    function: JobFunction,
    *,
    job_id: str,
    interval_seconds: float,
    max_instances: int = 1,
) -> Job:
    """Run ``function`` every ``interval_seconds`` on the shared scheduler."""
    return _add_job(
        function,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        job_id=job_id,
        max_instances=max_instances,
    )


def _add_job(
    function: JobFunction, trigger: BaseTrigger, *, job_id: str, max_instances: int
) -> Job:
    """Add (or replace) a job whose first run is at start-up, not one period later."""
    job: Job = scheduler.add_job(
        function,
        trigger,
        id=job_id,
        name=job_id,
        max_instances=max_instances,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_TIME,
        replace_existing=True,
        next_run_time=datetime.now(UTC),
    )
    return job


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


def add_periodic_job(job: PeriodicJob, runtime: Runtime | None = None) -> Job:
    """Run ``job`` at its scheduled times, each time once across every process.

    Its first run, when the scheduler starts, catches up times missed since the job last
    ran anywhere (at most ``CURATE_PERIODIC_MAX_CATCH_UP``); then it runs at each time.
    One run at a time per process (``max_instances=1``).
    """
    runner = job.runner(runtime or get_runtime())
    _periodic_runners[job.name] = runner
    trigger = ScheduleTrigger(job.schedule, skew=lambda: runner.clock_skew)
    scheduled = _add_job(runner.tick, trigger, job_id=job.job_id, max_instances=1)
    logger.info("periodic job {} scheduled {} (job {})", job.name, job.schedule, job.job_id)
    return scheduled


def start_scheduler(runtime: Runtime | None = None) -> SharedScheduler:
    """Start the shared scheduler on the running event loop unless it runs already:
    `SharedScheduler.start`, with the rescuer job and instant pick-up."""
    if not scheduler.running:
        scheduler.start(runtime=runtime)
    return scheduler


async def shutdown_scheduler(
    grace_seconds: float | None = None, runtime: Runtime | None = None
) -> None:
    """Stop starting runs, let running ones finish, then stop; returns once stopped.

    Runs still busy after ``grace_seconds`` (default: ``CURATE_SHUTDOWN_GRACE_SECONDS``)
    are cancelled; their items go back to Queued, and a cancelled periodic run gives its
    time back for the next process to run. After a plain ``scheduler.shutdown()`` it waits
    for the stop that began then, with that stop's grace period.
    """
    if scheduler.running:
        await scheduler.begin_shutdown(grace_seconds, runtime)


def reset_scheduler() -> None:
    """Stop the shared scheduler at once and forget its jobs (tests)."""
    scheduler.reset()
