"""When periodic jobs are due: crontab and epoch-aligned interval schedules, and the
APScheduler trigger that wakes the process at their times (computing cron times needs
APScheduler, so this lives beside the shared scheduler)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

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
