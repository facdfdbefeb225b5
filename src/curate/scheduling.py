"""The shared scheduler: the only module that imports APScheduler (3.x).

One `AsyncIOScheduler` (UTC) per process, shared by every workflow, started with the app.
Each workflow's ``setup_<name>_scheduler()`` calls `add_workflow_job`, each periodic job
`add_periodic_job`; the app calls `start_scheduler()` after the setups and
``await shutdown_scheduler()`` when it stops. The schedules of periodic jobs (crontab,
epoch-aligned interval) are here too, since computing cron times needs APScheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger

from curate.runtime import Runtime, get_runtime
from curate.workflow import Workflow

if TYPE_CHECKING:
    from curate.periodic import PeriodicJob, PeriodicRunner

JobFunction = Callable[[], Awaitable[Any]]

MISFIRE_GRACE_TIME: int | None = None
"""No limit: a run that starts late still runs (APScheduler's default of 1 s drops it);
with ``coalesce=True`` several missed runs become one."""

_scheduler: AsyncIOScheduler | None = None
_periodic_runners: dict[str, PeriodicRunner] = {}
"""The periodic jobs of the shared scheduler, by name: shutdown waits for their runs."""


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
    scheduler = get_scheduler()
    if scheduler.get_job(job_id) is not None:
        # replace_existing only applies once the scheduler runs; before that, do it here.
        scheduler.remove_job(job_id)
    return scheduler.add_job(
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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIRST_LOOK_BACK = timedelta(minutes=1)


class Schedule:
    """The times a periodic job is due: the same on every replica, whenever it started."""

    def next_after(self, moment: datetime) -> datetime | None:
        """The first time after ``moment``; None if there is none."""
        raise NotImplementedError

    def times_between(self, after: datetime, until: datetime) -> list[datetime]:
        """The times in (``after``, ``until``], oldest first."""
        times = []
        moment = self.next_after(after)
        while moment is not None and moment <= until:
            times.append(moment)
            moment = self.next_after(moment)
        return times

    def latest(self, after: datetime, until: datetime, count: int) -> list[datetime]:
        """The last ``count`` times in (``after``, ``until``], oldest first.

        Looks back in doubling windows from ``until``, so a gap of months costs a few
        steps rather than one per missed time.
        """
        if count <= 0:
            return []
        look_back = _FIRST_LOOK_BACK
        while until - look_back > after:
            times = self.times_between(until - look_back, until)
            if len(times) >= count:
                return times[-count:]
            look_back *= 2
        return self.times_between(after, until)[-count:]


class CronSchedule(Schedule):
    """The times of a crontab expression, read in UTC."""

    def __init__(self, expression: str) -> None:
        """Raises ValueError for an expression APScheduler rejects or one matching no date."""
        self.expression = expression
        self._cron = CronTrigger.from_crontab(expression, timezone=UTC)
        if self.next_after(datetime.now(UTC)) is None:
            raise ValueError("it matches no date")

    def next_after(self, moment: datetime) -> datetime | None:
        following: datetime | None = self._cron.get_next_fire_time(None, moment + _MICROSECOND)
        return following

    def __str__(self) -> str:
        return f"at {self.expression!r} (UTC)"


class IntervalSchedule(Schedule):
    """Every ``seconds`` counted from the Unix epoch, not from each process's start."""

    def __init__(self, seconds: float) -> None:
        self.period = timedelta(seconds=seconds)

    def next_after(self, moment: datetime) -> datetime:
        return EPOCH + ((moment - EPOCH) // self.period + 1) * self.period

    def __str__(self) -> str:
        return f"every {self.period.total_seconds():g} s"


class ScheduleTrigger(BaseTrigger):  # type: ignore[misc]
    """Wakes the process at a schedule's times, also after a start-up run at any moment
    (APScheduler's interval trigger would count on from that run, off the epoch).

    The times are the database's: ``skew()``, how far this host's clock is ahead of the
    database's (measured by the job's runs), moves each wake-up onto the host's clock.
    """

    def __init__(self, schedule: Schedule, skew: Callable[[], timedelta] | None = None) -> None:
        self.schedule = schedule
        self.skew = skew or (lambda: timedelta(0))

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        skew = self.skew()
        after = now - _MICROSECOND if previous_fire_time is None else previous_fire_time
        following = self.schedule.next_after(after - skew)
        return None if following is None else following + skew

    def __str__(self) -> str:
        return str(self.schedule)


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
    are cancelled; their items go back to Queued, and a cancelled periodic run gives its
    time back for the next process to run.
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
    runners = list(_periodic_runners.values())
    await asyncio.gather(
        runtime.stop_runs(grace_seconds), *(runner.stop(grace_seconds) for runner in runners)
    )
    _periodic_runners.clear()
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
    _periodic_runners.clear()


def _log_job_error(event: JobExecutionEvent) -> None:
    logger.opt(exception=event.exception).error("scheduler job {} raised", event.job_id)


def _log_missed(event: JobEvent) -> None:
    logger.warning("scheduler job {} missed its run time", event.job_id)


def _log_busy(event: JobEvent) -> None:
    logger.debug("scheduler job {} skipped a run: its previous run is still going", event.job_id)
