"""Periodic jobs: each scheduled time runs once across processes, by the database's clock
whatever a host's says, catch-up is bounded, failures are recorded, a dead process's run
is taken over once its lease expires, a run that lost its lease is cancelled, and runs
neither overlap in a process nor outlive shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from apscheduler.schedulers.base import STATE_PAUSED
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import scheduling
from curate.sql import periodic as sql
from curate.testing import wait_until
from tests.periodic_app import EFFECTS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

EVERY_NEW_YEAR = "0 0 1 1 *"


async def run_rows(engine: AsyncEngine, job_name: str) -> list[Any]:
    """The job's rows in curate_periodic_runs, oldest time first."""
    async with engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT scheduled_at, worker_id, attempts, started_at, lease_until, finished_at,"
                " error"
                " FROM curate_periodic_runs"
                " WHERE job_name = :job_name ORDER BY scheduled_at"
            ),
            {"job_name": job_name},
        )
        return list(result)


async def finished_runs(engine: AsyncEngine, job_name: str) -> list[Any]:
    return [row for row in await run_rows(engine, job_name) if row.finished_at is not None]


async def record_claim(
    engine: AsyncEngine,
    job_name: str,
    scheduled_at: datetime,
    *,
    worker_id: str = "old-replica",
    lease_seconds: float = 60.0,
    finished: bool = True,
) -> None:
    """As if another replica claimed (and by default finished) ``scheduled_at``."""
    params = {
        "job_name": job_name,
        "scheduled_at": scheduled_at,
        "worker_id": worker_id,
        "lease_seconds": lease_seconds,
    }
    async with engine.begin() as connection:
        attempt = await connection.scalar(sql.CLAIM_RUN, params)
        if finished:
            await connection.execute(sql.FINISH_RUN, {**params, "attempt": attempt, "error": None})


def replica_env(database_url: str, schema: str) -> dict[str, str]:
    """The environment of a `tests.periodic_app` process on the test's schema."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CURATE_")}
    return env | {
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "CURATE_LISTEN_NOTIFY": "false",
    }


def start_replica(env: dict[str, str], worker_id: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.periodic_app"],
        cwd=ROOT,
        env=env | {"CURATE_WORKER_ID": worker_id},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def stop_replicas(replicas: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each replica; each must shut down cleanly."""
    for replica in replicas:
        replica.send_signal(signal.SIGTERM)
    exit_codes = [await asyncio.to_thread(replica.wait, 15) for replica in replicas]
    assert exit_codes == [0] * len(replicas)


async def effects(engine: AsyncEngine) -> list[Any]:
    """What the replicas' job did: (scheduled_at, worker_id, host_clock), oldest first."""
    async with engine.connect() as connection:
        result = await connection.execute(
            select(EFFECTS.c.scheduled_at, EFFECTS.c.worker_id, EFFECTS.c.host_clock).order_by(
                EFFECTS.c.scheduled_at, EFFECTS.c.worker_id
            )
        )
        return list(result)


def assert_each_second_ran_once(done: list[Any]) -> list[datetime]:
    """Every second from the first to the last ran exactly once; the seconds."""
    runs_per_time = Counter(effect.scheduled_at for effect in done)
    assert set(runs_per_time.values()) == {1}, "a scheduled time ran more than once"
    times = sorted(runs_per_time)
    assert times == [times[0] + timedelta(seconds=n) for n in range(len(times))], "a gap"
    assert {scheduled_at.microsecond for scheduled_at in times} == {0}  # epoch-aligned
    return times


async def test_replicas_run_each_scheduled_time_exactly_once(
    engine: AsyncEngine, database_url: str, schema: str, tmp_path: Path
) -> None:
    """Three processes wake every second; each time runs in exactly one of them."""
    async with engine.begin() as connection:
        await connection.run_sync(EFFECTS.metadata.create_all)
    env = replica_env(database_url, schema)

    async def several_times_by_several_replicas() -> bool:
        done = await effects(engine)
        return len(done) >= 6 and len({effect.worker_id for effect in done}) >= 2

    replicas: list[subprocess.Popen[bytes]] = []
    try:
        for number in range(3):
            replicas.append(start_replica(env, f"replica-{number}", tmp_path / f"{number}.log"))
        await wait_until(
            several_times_by_several_replicas, seconds=30, what="6 times run by 2+ replicas"
        )
        await stop_replicas(replicas)
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()

    done = await effects(engine)
    assert_each_second_ran_once(done)
    recorded = await run_rows(engine, "record_tick")
    assert [(row.scheduled_at, row.worker_id) for row in recorded] == [
        (effect.scheduled_at, effect.worker_id) for effect in done
    ]
    assert all(row.finished_at is not None and row.error is None for row in recorded)


async def test_start_catches_up_the_latest_missed_times_up_to_the_setting(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    runtime.settings.periodic_max_catch_up = 3
    calls: list[datetime] = []

    @curate.periodic(cron=EVERY_NEW_YEAR)
    async def new_year(scheduled_at: datetime) -> None:
        calls.append(scheduled_at)

    await record_claim(engine, "new_year", datetime(2019, 1, 1, tzinfo=UTC))
    scheduling.add_periodic_job(new_year)
    scheduling.start_scheduler()

    async def caught_up() -> bool:
        return len(await finished_runs(engine, "new_year")) == 4

    await wait_until(caught_up, seconds=10, what="3 caught-up times")
    await scheduling.shutdown_scheduler()

    this_year = datetime.now(UTC).year
    latest_three = [
        datetime(year, 1, 1, tzinfo=UTC) for year in range(this_year - 2, this_year + 1)
    ]
    assert calls == latest_three
    rows = await run_rows(engine, "new_year")
    assert [row.scheduled_at for row in rows] == [datetime(2019, 1, 1, tzinfo=UTC), *latest_three]
    assert {row.worker_id for row in rows[1:]} == {"test-worker"}


async def test_zero_catch_up_skips_the_missed_times(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    runtime.settings.periodic_max_catch_up = 0
    calls: list[datetime] = []

    @curate.periodic(cron=EVERY_NEW_YEAR)
    async def new_year(scheduled_at: datetime) -> None:
        calls.append(scheduled_at)

    await record_claim(engine, "new_year", datetime(2019, 1, 1, tzinfo=UTC))
    start_up_tick = scheduling.add_periodic_job(new_year).func
    await start_up_tick()

    assert calls == []
    assert len(await run_rows(engine, "new_year")) == 1


async def test_a_new_job_starts_from_now_at_epoch_aligned_times(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    calls: list[datetime] = []

    @curate.periodic(every_seconds=300)
    async def every_five_minutes(scheduled_at: datetime) -> None:
        calls.append(scheduled_at)

    job = scheduling.add_periodic_job(every_five_minutes)
    now = datetime.now(UTC)
    next_wake_up = job.trigger.get_next_fire_time(None, now)
    assert next_wake_up.timestamp() % 300 == 0 and now < next_wake_up <= now + timedelta(
        seconds=300
    )

    await job.func()  # the start-up tick: the job never ran anywhere, nothing to catch up
    assert calls == []
    await job.func()  # a wake-up: runs the latest time, :00, :05, :10, ...
    [scheduled_at] = calls
    assert scheduled_at.timestamp() % 300 == 0 and scheduled_at.tzinfo is not None
    assert datetime.now(UTC) - timedelta(seconds=300) < scheduled_at <= datetime.now(UTC)
    await job.func()  # the same time again: already run, not run twice
    assert calls == [scheduled_at]


async def test_wake_ups_move_by_the_hosts_clock_skew(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Each tick measures the host's clock against the database's; the scheduler's next
    wake-ups move by it, so a host 17 minutes fast wakes 17 minutes "late" by its clock."""

    @curate.periodic(every_seconds=300)
    async def every_five_minutes(scheduled_at: datetime) -> None:
        """What a job does is not the point here."""

    job = scheduling.add_periodic_job(every_five_minutes)
    await job.func()
    runner = job.func.__self__
    assert abs(runner.clock_skew) < timedelta(seconds=1)  # this host and the database agree
    runner.clock_skew = timedelta(minutes=17)
    now = datetime.now(UTC)
    wake_up = job.trigger.get_next_fire_time(None, now)
    assert (wake_up - timedelta(minutes=17)).timestamp() % 300 == 0
    assert now < wake_up <= now + timedelta(seconds=300)
    assert job.trigger.get_next_fire_time(wake_up, now) == wake_up + timedelta(seconds=300)


async def test_a_failing_run_is_recorded_and_the_next_time_still_runs(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    calls: list[datetime] = []

    @curate.periodic(every_seconds=1)
    async def flaky(scheduled_at: datetime) -> None:
        calls.append(scheduled_at)
        if len(calls) == 1:
            raise ValueError(f"no luck at {scheduled_at:%H:%M:%S}")

    scheduling.add_periodic_job(flaky)
    scheduling.start_scheduler()

    async def two_finished() -> bool:
        return len(await finished_runs(engine, "flaky")) >= 2

    await wait_until(two_finished, seconds=10, what="a failed and a later run")
    await scheduling.shutdown_scheduler()

    failed, after = (await finished_runs(engine, "flaky"))[:2]
    assert failed.error == f"ValueError: no luck at {calls[0]:%H:%M:%S}"
    assert after.error is None and after.scheduled_at > failed.scheduled_at
    [logged] = [line for line in log_lines if "periodic job flaky failed" in line]
    assert f"for {calls[0]}: ValueError: no luck" in logged and "Traceback" in logged


async def test_a_run_still_going_at_the_next_time_does_not_overlap_it(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    release = asyncio.Event()
    calls: list[datetime] = []
    running = 0
    most_at_once = 0

    @curate.periodic(every_seconds=1)
    async def slow(scheduled_at: datetime) -> None:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        calls.append(scheduled_at)
        try:
            if len(calls) == 1:
                await release.wait()
        finally:
            running -= 1

    scheduling.add_periodic_job(slow)
    scheduling.start_scheduler()

    async def started() -> bool:
        return bool(calls)

    await wait_until(started, seconds=10, what="the first run")

    async def two_more_times_passed() -> bool:
        return datetime.now(UTC) > calls[0] + timedelta(seconds=2.5)

    await wait_until(two_more_times_passed, seconds=10, what="two more scheduled times")
    release.set()

    async def ran_on() -> bool:
        return len(calls) >= 3

    await wait_until(ran_on, seconds=10, what="the runs after the slow one")
    await scheduling.shutdown_scheduler()

    assert most_at_once == 1
    assert len(set(calls)) == len(calls) and calls == sorted(calls)
    assert [row.scheduled_at for row in await run_rows(engine, "slow")] == calls


async def test_shutdown_lets_a_periodic_run_finish(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    release = asyncio.Event()

    @curate.periodic(every_seconds=1)
    async def finishing(scheduled_at: datetime) -> None:
        await release.wait()

    scheduling.add_periodic_job(finishing)
    scheduling.start_scheduler()

    async def claimed() -> bool:
        return bool(await run_rows(engine, "finishing"))

    await wait_until(claimed, seconds=10, what="a run to start")
    shutdown = asyncio.create_task(scheduling.shutdown_scheduler(grace_seconds=10))

    async def shutting_down() -> bool:
        return scheduling.get_scheduler().state == STATE_PAUSED

    await wait_until(shutting_down, seconds=5, what="the shutdown to begin")
    assert not shutdown.done()
    release.set()
    await asyncio.wait_for(shutdown, timeout=10)
    [row] = await run_rows(engine, "finishing")
    assert row.finished_at is not None and row.error is None


async def test_a_run_cut_short_by_shutdown_is_run_again_at_the_next_start(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    @curate.periodic(every_seconds=1, name="stuck")
    async def hangs(scheduled_at: datetime) -> None:
        await asyncio.Event().wait()

    scheduling.add_periodic_job(hangs)
    scheduling.start_scheduler()

    async def claimed() -> bool:
        return bool(await run_rows(engine, "stuck"))

    await wait_until(claimed, seconds=10, what="a run to start")
    await scheduling.shutdown_scheduler(grace_seconds=0.1)
    [cut_short] = await run_rows(engine, "stuck")
    assert (cut_short.finished_at, cut_short.error) == (None, None)  # released, not failed

    calls: list[datetime] = []

    @curate.periodic(every_seconds=1, name="stuck")
    async def finishes(scheduled_at: datetime) -> None:
        calls.append(scheduled_at)

    runtime.settings.periodic_max_catch_up = 5  # room for the seconds missed meanwhile too
    await scheduling.add_periodic_job(finishes).func()  # the next start-up
    assert calls[0] == cut_short.scheduled_at  # the oldest late time runs first
    rerun = (await run_rows(engine, "stuck"))[0]
    assert (rerun.attempts, rerun.error) == (2, None) and rerun.finished_at is not None


async def test_a_dead_process_run_is_taken_over_once_its_lease_expired(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    calls: list[datetime] = []

    @curate.periodic(cron=EVERY_NEW_YEAR)
    async def new_year(scheduled_at: datetime) -> None:
        calls.append(scheduled_at)

    this_year = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)
    last_year = this_year.replace(year=this_year.year - 1)
    for scheduled_at, worker_id, lease_seconds in [
        (last_year, "dead-replica", -1.0),  # its lease ran out a second ago
        (this_year, "live-replica", 60.0),  # still renewing its lease
    ]:
        await record_claim(
            engine,
            "new_year",
            scheduled_at,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            finished=False,
        )

    await scheduling.add_periodic_job(new_year).func()

    assert calls == [last_year]
    taken_over, left_alone = await run_rows(engine, "new_year")
    assert (taken_over.worker_id, taken_over.attempts) == ("test-worker", 2)
    assert taken_over.finished_at is not None
    assert (left_alone.worker_id, left_alone.attempts, left_alone.finished_at) == (
        "live-replica",
        1,
        None,
    )
    assert any("running it again, its process stopped (attempt 2)" in line for line in log_lines)


async def test_a_long_run_keeps_its_lease(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    release = asyncio.Event()

    @curate.periodic(every_seconds=1, lease_seconds=1)
    async def long_run(scheduled_at: datetime) -> None:
        await release.wait()

    scheduling.add_periodic_job(long_run)
    scheduling.start_scheduler()

    async def lease_renewed_twice() -> bool:
        rows = await run_rows(engine, "long_run")
        return bool(rows) and rows[0].lease_until > rows[0].scheduled_at + timedelta(seconds=1.6)

    await wait_until(lease_renewed_twice, seconds=10, what="the lease to be renewed")
    [running] = await run_rows(engine, "long_run")
    params = {"job_name": "long_run", "scheduled_at": running.scheduled_at}
    async with engine.begin() as connection:
        taken = await connection.scalar(
            sql.CLAIM_RUN, {**params, "worker_id": "other-replica", "lease_seconds": 1.0}
        )
    assert taken is None  # the lease is alive: no other process takes the run over
    release.set()
    await scheduling.shutdown_scheduler()
    finished = (await run_rows(engine, "long_run"))[0]
    assert (finished.worker_id, finished.attempts, finished.error) == ("test-worker", 1, None)
    assert finished.finished_at is not None


def libfaketime() -> Path:
    """Debian's libfaketime (package faketime); under CI (CI set) its absence fails."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if found:
        return found[0]
    reason = "libfaketime is missing: apt-get install faketime (.ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.faults
async def test_a_host_an_hour_fast_runs_nothing_early_and_leaves_no_gap(
    engine: AsyncEngine, database_url: str, schema: str, tmp_path: Path
) -> None:
    """One replica's clock is an hour ahead (faketime): times follow the database's clock.

    Both replicas run together, then the fast one alone: each second runs once, none
    before its time by the database's clock, none skipped, and the fast one takes part.
    """
    async with engine.begin() as connection:
        await connection.run_sync(EFFECTS.metadata.create_all)
    env = replica_env(database_url, schema)
    fast_env = env | {
        "LD_PRELOAD": str(libfaketime()),
        "FAKETIME": "+1h",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # asyncio's timers stay on the real clock
    }

    async def ran(count: int, worker: str | None = None) -> bool:
        done = await effects(engine)
        return len([e for e in done if worker in (None, e.worker_id)]) >= count

    correct = start_replica(env, "correct", tmp_path / "correct.log")
    fast: subprocess.Popen[bytes] | None = None
    try:
        await wait_until(lambda: ran(2), seconds=30, what="2 times on the correct host")
        fast = start_replica(fast_env, "fast", tmp_path / "fast.log")
        await wait_until(lambda: ran(8), seconds=30, what="6 more times, both hosts up")
        await stop_replicas([correct])
        await wait_until(lambda: ran(3, "fast"), seconds=30, what="3 times on the fast host")
        await stop_replicas([fast])
    finally:
        for replica in (correct, fast):
            if replica is not None and replica.poll() is None:
                replica.kill()

    done = await effects(engine)
    assert_each_second_ran_once(done)
    for effect in done:  # faketime did shift the fast host's clock, and only its
        hour_ahead = timedelta(hours=1) if effect.worker_id == "fast" else timedelta(0)
        assert abs(effect.host_clock - hour_ahead - effect.scheduled_at) < timedelta(seconds=5)
    rows = await run_rows(engine, "record_tick")
    assert [(row.scheduled_at, row.worker_id) for row in rows] == [
        (effect.scheduled_at, effect.worker_id) for effect in done
    ]
    early = [row for row in rows if row.started_at < row.scheduled_at]
    assert not early, f"run before its time by the database's clock: {early}"
    fast_lateness = [row.started_at - row.scheduled_at for row in rows if row.worker_id == "fast"]
    assert median(fast_lateness) < timedelta(seconds=0.5)  # woken on time, not caught up
    async with engine.connect() as connection:
        database_now = await connection.scalar(text("SELECT now()"))
    assert rows[-1].scheduled_at <= database_now


@pytest.mark.faults
async def test_times_ahead_of_the_database_clock_are_neither_claimed_nor_followed(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """A time in the future cannot be claimed; a row there (from an older curate on a fast
    host) does not hide the times before it from catch-up."""
    calls: list[datetime] = []

    @curate.periodic(cron=EVERY_NEW_YEAR)
    async def new_year(scheduled_at: datetime) -> None:
        calls.append(scheduled_at)

    this_year = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)
    next_year = this_year.replace(year=this_year.year + 1)
    await record_claim(engine, "new_year", this_year.replace(year=this_year.year - 1))
    async with engine.begin() as connection:
        refused = await connection.scalar(
            sql.CLAIM_RUN,
            {
                "job_name": "new_year",
                "scheduled_at": next_year,
                "worker_id": "fast-replica",
                "lease_seconds": 60.0,
            },
        )
        assert refused is None
        await connection.execute(  # what an older curate on a fast host wrote
            text(
                "INSERT INTO curate_periodic_runs (job_name, scheduled_at, worker_id,"
                " lease_until, finished_at) VALUES ('new_year', :at, 'old-fast', now(), now())"
            ),
            {"at": next_year},
        )

    await scheduling.add_periodic_job(new_year).func()  # the start-up tick catches up

    assert calls == [this_year]


@pytest.mark.faults
async def test_a_run_that_lost_its_lease_is_cancelled_and_not_recorded(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    """A run stalls past its lease and another process takes its time over: the stalled
    run's next renewal finds the row taken, so its task is cancelled."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @curate.periodic(cron=EVERY_NEW_YEAR, lease_seconds=1)
    async def new_year(scheduled_at: datetime) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # stalls for good
        except asyncio.CancelledError:
            cancelled.set()
            raise

    this_year = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)
    await record_claim(engine, "new_year", this_year.replace(year=this_year.year - 1))
    tick = asyncio.create_task(scheduling.add_periodic_job(new_year).func())
    try:
        await asyncio.wait_for(started.wait(), timeout=10)
        await take_over(engine, "new_year", this_year)
        await asyncio.wait_for(tick, timeout=10)  # the next renewal (1/3 s) ends the run
    finally:
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)

    assert cancelled.is_set()
    [_, taken] = await run_rows(engine, "new_year")
    assert (taken.worker_id, taken.attempts, taken.finished_at) == ("other-replica", 2, None)
    assert any("outlived its lease and another process took" in line for line in log_lines)


@pytest.mark.faults
async def test_session_writes_commit_with_the_outcome_or_not_at_all(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    """A job taking a session: its writes commit with its outcome; when its time was taken
    over before it finished, neither its writes nor its outcome are committed."""
    async with engine.begin() as connection:
        await connection.run_sync(EFFECTS.metadata.create_all)
    this_year = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)
    last_year = this_year.replace(year=this_year.year - 1)
    wrote = asyncio.Event()
    release = asyncio.Event()

    @curate.periodic(cron=EVERY_NEW_YEAR)  # a 60 s lease: no renewal notices the takeover
    async def new_year(scheduled_at: datetime, session: AsyncSession) -> None:
        await session.execute(insert(EFFECTS), {"scheduled_at": scheduled_at, "worker_id": "w"})
        if scheduled_at == this_year:
            wrote.set()
            await release.wait()

    runtime.settings.periodic_max_catch_up = 2
    await record_claim(engine, "new_year", last_year.replace(year=last_year.year - 1))
    tick = asyncio.create_task(scheduling.add_periodic_job(new_year).func())
    try:
        await asyncio.wait_for(wrote.wait(), timeout=10)
        await take_over(engine, "new_year", this_year)
        release.set()
        await asyncio.wait_for(tick, timeout=10)
    finally:
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)

    assert [effect.scheduled_at for effect in await effects(engine)] == [last_year]
    [_, finished, taken] = await run_rows(engine, "new_year")
    assert (finished.scheduled_at, finished.worker_id) == (last_year, "test-worker")
    assert finished.finished_at is not None
    assert (taken.worker_id, taken.attempts, taken.finished_at) == ("other-replica", 2, None)
    assert any("its session's writes rolled back" in line for line in log_lines)


async def take_over(engine: AsyncEngine, job_name: str, scheduled_at: datetime) -> None:
    """As another process would once the run's lease expired: in one transaction, so the
    run cannot renew its lease in between."""
    params = {"job_name": job_name, "scheduled_at": scheduled_at}
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE curate_periodic_runs SET lease_until = now() - interval '1 second'"
                " WHERE job_name = :job_name AND scheduled_at = :scheduled_at"
            ),
            params,
        )
        attempt = await connection.scalar(
            sql.CLAIM_RUN, {**params, "worker_id": "other-replica", "lease_seconds": 60.0}
        )
    assert attempt == 2


async def _noop(scheduled_at: datetime) -> None:
    """A job function whose spec around it is what is tested."""


def _not_async(scheduled_at: datetime) -> None:
    """A plain function: not a valid job."""


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"cron": "61 * * * *"},
            "periodic job 'job': cron='61 * * * *' is invalid: Error validating expression '61'",
        ),
        (
            {"cron": "*/5 * * *"},
            "periodic job 'job': cron='*/5 * * *' is invalid: Wrong number of fields; got 4",
        ),
        ({"cron": "0 0 30 2 *"}, "periodic job 'job': cron='0 0 30 2 *' is invalid: it matches"),
        (
            {"cron": "* * * * *", "every_seconds": 60},
            "periodic job 'job': give cron= or every_seconds=, not both",
        ),
        ({}, "periodic job 'job': give cron='*/5 * * * *' (a crontab, UTC) or every_seconds=300"),
        ({"every_seconds": 0.5}, "periodic job 'job': every_seconds=0.5 is invalid: must be"),
        ({"every_seconds": "60"}, "periodic job 'job': every_seconds='60' is invalid: must be"),
        ({"every_seconds": True}, "periodic job 'job': every_seconds=True is invalid: must be"),
        (
            {"every_seconds": 60, "lease_seconds": 0},
            "periodic job 'job': lease_seconds=0 is invalid: must be a number ≥ 1",
        ),
        (
            {"name": "Nightly-Purge", "every_seconds": 60},
            "periodic job name 'Nightly-Purge' is invalid: use lower snake_case",
        ),
        (
            {"function": _not_async, "every_seconds": 60},
            "periodic job 'job': the function must be an async def",
        ),
    ],
)
def test_invalid_specs_are_rejected_at_definition(spec: dict[str, Any], message: str) -> None:
    arguments = {"name": "job", "function": _noop, **spec}
    with pytest.raises(curate.ConfigurationError) as error:
        curate.PeriodicJob(**arguments)
    assert str(error.value).startswith(message)


def test_the_decorator_names_the_job_after_its_function() -> None:
    async def purge_logs(scheduled_at: datetime) -> None:
        """What a job does is not the point here."""

    job = curate.periodic(every_seconds=60)(purge_logs)
    assert (job.name, job.function, job.job_id) == ("purge_logs", purge_logs, "periodic_purge_logs")
    named = curate.periodic(name="nightly", cron="0 3 * * *")(purge_logs)
    assert (named.name, named.cron, named.every_seconds) == ("nightly", "0 3 * * *", None)


async def test_the_photo_maintenance_example(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    """docs/examples/periodic/photo_maintenance.py, as periodic-jobs.md shows it."""
    from periodic import photo_maintenance
    from photos.models import Base, CurationStatus, Photo

    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    night = datetime(2026, 6, 1, 3, tzinfo=UTC)
    photos = [
        (1, CurationStatus.Rejected, night - timedelta(days=31)),
        (2, CurationStatus.Rejected, night - timedelta(days=29)),
        (3, CurationStatus.Selected, night - timedelta(days=31)),
    ]
    async with engine.begin() as connection:
        await connection.execute(
            insert(Photo),
            [
                {"id": n, "url": f"https://example.org/{n}.jpg", "width": 64, "height": 64}
                | {"curation_status": status, "updated_at": updated_at}
                for n, status, updated_at in photos
            ],
        )

    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():  # as curate runs it, then commits
        await photo_maintenance.purge_rejected_photos(night, session)
    await photo_maintenance.log_photo_counts(night)

    async with engine.connect() as connection:
        left = set((await connection.scalars(select(Photo.id))).all())
    assert left == {2, 3}
    [counts] = [line for line in log_lines if "photos at 2026-06-01 03:00:00+00:00" in line]
    assert "'Rejected': 1" in counts and "'Selected': 1" in counts

    photo_maintenance.setup_periodic_jobs()
    now = datetime.now(UTC)
    wake_ups = {
        job.id: job.trigger.get_next_fire_time(None, now)
        for job in scheduling.get_scheduler().get_jobs()
    }
    assert set(wake_ups) == {"periodic_purge_rejected_photos", "periodic_log_photo_counts"}
    assert wake_ups["periodic_purge_rejected_photos"].time().isoformat() == "03:00:00"
    assert wake_ups["periodic_log_photo_counts"].timestamp() % 300 == 0
