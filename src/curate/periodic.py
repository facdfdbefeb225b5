"""Periodic jobs: work not tied to rows (cleanup, re-crawl), run once per scheduled time.

Every process (app replica, uvicorn worker, ``curate run``) wakes at the job's times, which
are the same everywhere: a crontab read in UTC, or an interval counted from the Unix epoch.
The database decides who runs a time: each process inserts (job, time) into
``curate_periodic_runs``, and only the one that got the row runs it, under a lease it
renews, then records when it finished or the error. A run whose process died is run
again by the next process that looks, once its lease expired; a run that outlived its
lease while another process took its time over is cancelled, its outcome not recorded.

Which times are due is decided by the database's clock, the one every process shares: a
host whose clock runs ahead wakes early, finds nothing due yet, and runs nothing early.
Without the table (no migration created it yet) a job cannot run once across processes,
so it does not run at all: it says so, once, and runs at its times once the table exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Row, TextClause
from sqlalchemy.ext.asyncio import AsyncSession

from curate.db.own_tables import missing_table
from curate.engine.error_text import format_error
from curate.errors import ConfigurationError
from curate.logs import logger
from curate.runtime import Runtime
from curate.scheduling import EPOCH, CronSchedule, IntervalSchedule, Schedule
from curate.sql import periodic as sql

if TYPE_CHECKING:
    from loguru import Logger

PlainFunction = Callable[[datetime], Awaitable[Any]]
SessionFunction = Callable[[datetime, AsyncSession], Awaitable[Any]]
PeriodicFunction = PlainFunction | SessionFunction
"""``async def job(scheduled_at)``, or ``async def job(scheduled_at, session)``: gets the
time it runs for, in UTC, and if it asks, a session whose writes curate commits together
with the run's outcome, or rolls back if the run lost its lease."""

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
    takes_session: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _checked_schedule(self))
        object.__setattr__(self, "takes_session", _takes_session(self))

    @property
    def job_id(self) -> str:
        """The scheduler job's id."""
        return f"periodic_{self.name}"

    async def __call__(self, scheduled_at: datetime, session: AsyncSession | None = None) -> Any:
        """Run the function once, as a test or a manual run would, without any claim;
        ``session`` is for a job that takes one, and ignored by one that does not."""
        if not self.takes_session:
            return await cast(PlainFunction, self.function)(scheduled_at)
        if session is None:
            raise TypeError(f"periodic job {self.name!r} takes a session: pass one after the time")
        return await cast(SessionFunction, self.function)(scheduled_at, session)

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


def _takes_session(job: PeriodicJob) -> bool:
    """A second parameter asks for a session; more than two required ones is a mistake."""
    parameters = inspect.signature(job.function).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in parameters if p.kind in kinds]
    if sum(p.default is inspect.Parameter.empty for p in positional) > 2:
        raise ConfigurationError(
            f"periodic job {job.name!r}: the function must take (scheduled_at)"
            " or (scheduled_at, session)"
        )
    return len(positional) >= 2


def _at_least(value: object, minimum: float) -> bool:
    """A real number (not a bool, not a string of digits) of at least ``minimum``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum


_EARLY_WAKE_UP = timedelta(seconds=0.5)
"""A wake-up this close before a time (by the database's clock) waits for it rather than
skip it: the host's clock, or its measured skew, is a little ahead. Under the shortest
period (1 s), so a wait never reaches past the time after."""

_SKEW_WORTH_A_WARNING = timedelta(seconds=1)


class PeriodicRunner:
    """Runs one job's due times in this process, each only if this process claims it."""

    def __init__(self, job: PeriodicJob, runtime: Runtime) -> None:
        self.job = job
        self.runtime = runtime
        self.stopping = False
        self.clock_skew = timedelta(0)
        """How far this host's clock is ahead of the database's, as last measured: the
        scheduler shifts the job's wake-ups by it, so they come at the database's times."""
        self._started = False
        """Set after the first tick, which only catches up: it was not woken for a time."""
        self._said_table_missing = False
        """Set once a missing table was reported: one error line, not one a tick."""
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
        (at most ``CURATE_PERIODIC_MAX_CATCH_UP`` of them), all by the database's clock.

        Missed times are those after the job's last claimed time anywhere; a job never
        run before has none. Abandoned times were claimed by a process that stopped
        before finishing them. The first tick was not woken for a time: it only catches up.
        None while the runs' table is missing.
        """
        if not await self._table_exists():
            return []
        catch_up = self.runtime.settings.periodic_max_catch_up
        state = await self._read_state(catch_up)
        schedule = self.job.schedule
        woken_for: list[datetime] = []
        if self._started:
            state = await self._wait_if_early(state, catch_up)
            woken_for = schedule.latest(state.last or EPOCH, state.now, 1)
        self._started = True
        late = set(state.abandoned)
        if state.last is not None:
            missed_until = woken_for[0] - timedelta(microseconds=1) if woken_for else state.now
            late.update(schedule.latest(state.last, missed_until, catch_up))
        latest_late = sorted(late)[-catch_up:] if catch_up else []
        if latest_late:
            self._log.info(
                "periodic job {}: running {} missed or abandoned time(s) late, from {}",
                self.job.name,
                len(latest_late),
                latest_late[0].isoformat(),
            )
        return latest_late + woken_for

    async def _table_exists(self) -> bool:
        """Whether the runs' table exists; if not, says so (once, as an error: the job does
        not run) and how to create it."""
        engine = await self.runtime.database.engine()
        missing = await missing_table(engine, sql.TABLE)
        if missing is None:
            return True
        if not self._said_table_missing:
            self._said_table_missing = True
            self._log.error(
                "periodic job {} does not run: {}, which records who runs each time; {}",
                self.job.name,
                missing,
                missing.how_to_create,
            )
        return False

    async def _read_state(self, catch_up: int) -> Row[Any]:
        """The database's time, the job's latest claimed time and its abandoned times
        (`sql.DUE_STATE`); measures this host's clock against the database's on the way."""
        engine = await self.runtime.database.engine()
        async with engine.connect() as connection:
            sent = datetime.now(UTC)
            result = await connection.execute(
                sql.DUE_STATE, {"job_name": self.job.name, "limit": catch_up}
            )
            received = datetime.now(UTC)
        state = result.one()
        skew = sent + (received - sent) / 2 - state.now
        if abs(skew) > _SKEW_WORTH_A_WARNING >= abs(self.clock_skew):
            self._log.warning(
                "periodic job {}: this host's clock is {:+.1f} s off the database's;"
                " scheduled times follow the database's",
                self.job.name,
                skew.total_seconds(),
            )
        self.clock_skew = skew
        return state

    async def _wait_if_early(self, state: Row[Any], catch_up: int) -> Row[Any]:
        """Wait for a time the process woke just before; the state once it is due."""
        while (upcoming := self.job.schedule.next_after(state.now)) is not None:
            early = upcoming - state.now
            if early > _EARLY_WAKE_UP:
                break
            await asyncio.sleep(early.total_seconds())
            state = await self._read_state(catch_up)
        return state

    async def _run(self, scheduled_at: datetime) -> None:
        """Claim ``scheduled_at``; if this process got it, run the job and record how it ended.

        A lease, renewed while the job runs, keeps other processes from taking it over.
        If a renewal finds the time taken over all the same (the run outlived its lease:
        a stalled loop, a database cut off), the job is cancelled: the other process runs it.
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
        work = asyncio.create_task(self._execute(scheduled_at, attempt, log))
        lease = asyncio.create_task(self._keep_lease(scheduled_at, attempt))
        try:
            await asyncio.wait({work, lease}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                await work  # raises if the outcome could not be written: the tick logs it
                return
            await _cancel(work)  # the lease was lost
            log.warning(
                "periodic job {} at {}: cancelled: it outlived its lease and another process"
                " took the time over",
                self.job.name,
                scheduled_at,
            )
        except asyncio.CancelledError:  # shutdown: hand the time to the next process
            await _cancel(work)
            with contextlib.suppress(Exception):  # if not released, the lease expires
                await self._write(sql.RELEASE_RUN, scheduled_at, attempt=attempt)
            raise
        finally:
            lease.cancel()

    async def _execute(self, scheduled_at: datetime, attempt: int, log: Logger) -> None:
        """Call the function; record its outcome in the transaction of the session it
        wrote through (if it takes one), so its writes commit with the outcome, or not
        at all if the run lost its lease meanwhile (or is cancelled)."""
        sessionmaker = await self.runtime.database.sessionmaker()
        async with sessionmaker() as session:
            error = None
            try:
                await self.job(scheduled_at, session)
            except Exception as exc:
                error = format_error(exc)
                log.opt(exception=exc).error(
                    "periodic job {} failed for {}: {}", self.job.name, scheduled_at, error
                )
                await session.rollback()
            params = self._params(scheduled_at, attempt=attempt, error=error)
            if await session.scalar(sql.FINISH_RUN, params) is not None:
                await session.commit()
                return
            await session.rollback()
        log.warning(
            "periodic job {} at {}: not recorded{}: it outlived its lease and another process"
            " took the time over",
            self.job.name,
            scheduled_at,
            ", its session's writes rolled back" if self.job.takes_session else "",
        )

    async def _keep_lease(self, scheduled_at: datetime, attempt: int) -> None:
        """Renew the run's lease every third of it, until a renewal finds that another
        process took the time over; a failed renewal is retried next time."""
        while True:
            await asyncio.sleep(self.job.lease_seconds / 3)
            try:
                if await self._write(sql.EXTEND_LEASE, scheduled_at, attempt=attempt) is None:
                    return
            except Exception as exc:
                self._log.warning(
                    "periodic job {}: could not renew the lease of {}: {}",
                    self.job.name,
                    scheduled_at,
                    format_error(exc),
                )

    def _params(self, scheduled_at: datetime, **params: Any) -> dict[str, Any]:
        """The parameters of a statement about this job's run at ``scheduled_at``."""
        return {
            "job_name": self.job.name,
            "scheduled_at": scheduled_at,
            "worker_id": self.runtime.settings.worker_id,
            "lease_seconds": float(self.job.lease_seconds),
            **params,
        }

    async def _write(self, statement: TextClause, scheduled_at: datetime, **params: Any) -> Any:
        """Run one statement about this job's run at ``scheduled_at``; its first value,
        None when it touched no row."""
        engine = await self.runtime.database.engine()
        async with engine.begin() as connection:
            return await connection.scalar(statement, self._params(scheduled_at, **params))

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


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has unwound (its session closed, rolled back)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
