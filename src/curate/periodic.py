"""Periodic jobs: work not tied to rows (cleanup, re-crawl), run once per scheduled time.

Every process (app replica, uvicorn worker, ``curate run``) wakes at the job's times, which
are the same everywhere: a crontab read in UTC, or an interval counted from the Unix epoch.
The database decides who runs a time: each process inserts (job, time) into
``curate_periodic_runs``, and only the one that got the row runs it, under a lease it
renews, then records when it finished or the error. A run whose process died is run
again by the next process that looks, once its lease expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import TextClause

from curate.db.own_tables import ensure_tables
from curate.engine.error_text import format_error
from curate.errors import ConfigurationError
from curate.runtime import Runtime
from curate.scheduling import EPOCH, CronSchedule, IntervalSchedule, Schedule
from curate.sql import periodic as sql

PeriodicFunction = Callable[[datetime], Awaitable[Any]]
"""``async def job(scheduled_at: datetime)``: gets the time it runs for, in UTC."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

MIN_SECONDS = 1.0
"""The shortest period and lease: each run writes a row and renews its lease in the
database, so sub-second periods are not for this."""

DEFAULT_LEASE_SECONDS = 60.0
"""How long a run stays claimed without a heartbeat: the delay before a dead process's run
is taken over. The heartbeat renews it every third of it."""


@dataclass(frozen=True)
class PeriodicJob:
    """A job run at the times of ``cron`` (a crontab, UTC) or every ``every_seconds``.

    Invalid specs raise `ConfigurationError` here, when the module defining them is
    imported, rather than at the first scheduled time.
    """

    name: str
    function: PeriodicFunction
    cron: str | None = None
    every_seconds: float | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    schedule: Schedule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _checked_schedule(self))

    @property
    def job_id(self) -> str:
        """The scheduler job's id."""
        return f"periodic_{self.name}"

    async def __call__(self, scheduled_at: datetime) -> Any:
        """Run the function once, as a test or a manual run would, without any claim."""
        return await self.function(scheduled_at)

    def runner(self, runtime: Runtime) -> PeriodicRunner:
        """What the scheduler calls at each time, in ``runtime``'s process."""
        return PeriodicRunner(self, runtime)


def periodic(
    *,
    name: str | None = None,
    cron: str | None = None,
    every_seconds: float | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Callable[[PeriodicFunction], PeriodicJob]:
    """Decorate ``async def job(scheduled_at)`` into a `PeriodicJob` named after it."""

    def decorate(function: PeriodicFunction) -> PeriodicJob:
        return PeriodicJob(
            name or function.__name__,
            function,
            cron=cron,
            every_seconds=every_seconds,
            lease_seconds=lease_seconds,
        )

    return decorate


def _checked_schedule(job: PeriodicJob) -> Schedule:
    """The job's schedule, or a `ConfigurationError` saying what is wrong with the spec."""
    if not isinstance(job.name, str) or not _NAME.match(job.name):
        raise ConfigurationError(
            f"periodic job name {job.name!r} is invalid: use lower snake_case (e.g. purge_logs)"
        )
    where = f"periodic job {job.name!r}"
    if not inspect.iscoroutinefunction(job.function):
        raise ConfigurationError(f"{where}: the function must be an async def (scheduled_at)")
    if not _at_least(job.lease_seconds, MIN_SECONDS):
        raise ConfigurationError(
            f"{where}: lease_seconds={job.lease_seconds!r} is invalid: must be a number"
            f" ≥ {MIN_SECONDS:g}"
        )
    if job.cron is not None and job.every_seconds is not None:
        raise ConfigurationError(f"{where}: give cron= or every_seconds=, not both")
    if job.cron is not None:
        try:
            return CronSchedule(job.cron)
        except ValueError as exc:
            raise ConfigurationError(f"{where}: cron={job.cron!r} is invalid: {exc}") from None
    if job.every_seconds is None:
        raise ConfigurationError(
            f"{where}: give cron='*/5 * * * *' (a crontab, UTC) or every_seconds=300"
        )
    if not _at_least(job.every_seconds, MIN_SECONDS):
        raise ConfigurationError(
            f"{where}: every_seconds={job.every_seconds!r} is invalid: must be a number"
            f" ≥ {MIN_SECONDS:g}"
        )
    return IntervalSchedule(job.every_seconds)


def _at_least(value: object, minimum: float) -> bool:
    """A real number (not a bool, not a string of digits) of at least ``minimum``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum


class PeriodicRunner:
    """Runs one job's due times in this process, each only if this process claims it."""

    def __init__(self, job: PeriodicJob, runtime: Runtime) -> None:
        self.job = job
        self.runtime = runtime
        self.stopping = False
        self._started = False
        """Set after the first tick, which only catches up: it was not woken for a time."""
        self._running: asyncio.Task[Any] | None = None
        self._log = logger.bind(periodic_job=job.name)

    async def tick(self) -> None:
        """The scheduler's job: run the time just due and missed ones; never raises."""
        self._running = asyncio.current_task()
        try:
            for scheduled_at in await self._due_times():
                if self.stopping:
                    break
                await self._run(scheduled_at)
        except Exception as exc:  # the database is away: the next tick tries again
            self._log.error(
                "periodic job {} could not run, the next time retries: {}",
                self.job.name,
                format_error(exc),
            )
        finally:
            self._running = None

    async def _due_times(self) -> list[datetime]:
        """The time this tick was woken for, after the latest missed or abandoned times
        (at most ``CURATE_PERIODIC_MAX_CATCH_UP`` of them).

        Missed times are those after the job's last claimed time anywhere; a job never
        run before has none. Abandoned times were claimed by a process that stopped
        before finishing them. The first tick was not woken for a time: it only catches up.
        """
        now = datetime.now(UTC)
        engine = await self.runtime.database.engine()
        await ensure_tables(engine, sql.TABLES_KEY, sql.CREATE_TABLES)
        catch_up = self.runtime.settings.periodic_max_catch_up
        async with engine.connect() as connection:
            last: datetime | None = await connection.scalar(
                sql.LAST_SCHEDULED, {"job_name": self.job.name}
            )
            abandoned = await connection.scalars(
                sql.ABANDONED_RUNS, {"job_name": self.job.name, "limit": catch_up}
            )
            late = set(abandoned)
        schedule = self.job.schedule
        woken_for = schedule.latest(last or EPOCH, now, 1) if self._started else []
        self._started = True
        if last is not None:
            missed_until = woken_for[0] - timedelta(microseconds=1) if woken_for else now
            late.update(schedule.latest(last, missed_until, catch_up))
        latest_late = sorted(late)[-catch_up:] if catch_up else []
        if latest_late:
            self._log.info(
                "periodic job {}: running {} missed or abandoned time(s) late, from {}",
                self.job.name,
                len(latest_late),
                latest_late[0].isoformat(),
            )
        return latest_late + woken_for

    async def _run(self, scheduled_at: datetime) -> None:
        """Claim ``scheduled_at``; if this process got it, run the job and record how it ended.

        A lease, renewed while the job runs, keeps other processes from taking it over.
        """
        log = self._log.bind(scheduled_at=scheduled_at.isoformat())
        attempt = await self._write(sql.CLAIM_RUN, scheduled_at)
        if attempt is None:
            log.debug("periodic job {} at {}: another process has it", self.job.name, scheduled_at)
            return
        if attempt > 1:
            log.warning(
                "periodic job {} at {}: running it again, its process stopped (attempt {})",
                self.job.name,
                scheduled_at,
                attempt,
            )
        heartbeat = asyncio.create_task(self._keep_lease(scheduled_at))
        try:
            await self.job.function(scheduled_at)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # if not released, the lease expires
                await self._write(sql.RELEASE_RUN, scheduled_at)
            raise
        except Exception as exc:
            error = format_error(exc)
            log.opt(exception=exc).error(
                "periodic job {} failed for {}: {}", self.job.name, scheduled_at, error
            )
            await self._write(sql.FINISH_RUN, scheduled_at, error=error)
        else:
            await self._write(sql.FINISH_RUN, scheduled_at, error=None)
        finally:
            heartbeat.cancel()

    async def _keep_lease(self, scheduled_at: datetime) -> None:
        """Renew the run's lease every third of it; a missed renewal is retried next time."""
        while True:
            await asyncio.sleep(self.job.lease_seconds / 3)
            try:
                await self._write(sql.EXTEND_LEASE, scheduled_at)
            except Exception as exc:
                self._log.warning(
                    "periodic job {}: could not renew the lease of {}: {}",
                    self.job.name,
                    scheduled_at,
                    format_error(exc),
                )

    async def _write(self, statement: TextClause, scheduled_at: datetime, **params: Any) -> Any:
        """Run one statement about this job's run at ``scheduled_at``; its first value."""
        engine = await self.runtime.database.engine()
        async with engine.begin() as connection:
            result = await connection.execute(
                statement,
                {
                    "job_name": self.job.name,
                    "scheduled_at": scheduled_at,
                    "worker_id": self.runtime.settings.worker_id,
                    "lease_seconds": float(self.job.lease_seconds),
                    **params,
                },
            )
            return result.scalar() if result.returns_rows else None

    async def stop(self, grace_seconds: float) -> bool:
        """Start no more times; give the running one ``grace_seconds``, then cancel it.

        A cancelled run gives up its lease, so another process runs that time again.
        Returns True if nothing had to be cancelled.
        """
        self.stopping = True
        running = self._running
        if running is None or running.done():
            return True
        _, pending = await asyncio.wait({running}, timeout=grace_seconds)
        if not pending:
            return True
        self._log.warning(
            "periodic job {} still running after {} s; cancelling it", self.job.name, grace_seconds
        )
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return False
