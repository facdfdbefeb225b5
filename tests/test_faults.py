"""Fault injection: killed workers, a restarted server, many workers, a stalled worker.

Whatever happens, every claimed row must end Complete, Error or back in Queued, and no
outcome (nor a transactional service's effect) may be written twice. Nor may a service
run twice (`tests.executions`, counted apart from the item's transaction, so a fenced-out
run counts too) unless its row was handed back in between. Run them alone with
``scripts/test -m faults``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    String,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate.db.embedded import start_embedded_postgres
from curate.engine.config import RunConfig
from curate.engine.rescuer import advisory_lock_key, rescue_expired
from curate.testing import wait_until
from tests.executions import ExecutionLog, ExecutionTable
from tests.faults.app import (
    HANDBACKS,
    OUTCOMES,
    TRANSITION_LOG,
    Base,
    FaultEffect,
    FaultItem,
    fault_executions,
    fault_workflow,
)
from tests.helpers import create_table, noop
from tests.pgbouncer import PgBouncer

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]


async def create_fault_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        for statement in TRANSITION_LOG:
            await conn.execute(text(statement))
    await ExecutionTable.create(engine)


async def queue_items(engine: AsyncEngine, count: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(FaultItem), [{"id": i, "fault_status": "Queued"} for i in range(1, count + 1)]
        )


async def status_counts(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(FaultItem.fault_status, func.count()).group_by(FaultItem.fault_status)  # type: ignore[attr-defined]
        )
        return Counter({str(status.value): n for status, n in rows})


async def per_item(engine: AsyncEngine, sql: str) -> Counter[int]:
    async with engine.connect() as conn:
        return Counter(dict((await conn.execute(text(sql))).all()))


async def assert_each_item_done_exactly_once(engine: AsyncEngine, count: int) -> None:
    assert await status_counts(engine) == {"Complete": count}
    effects = await per_item(engine, "SELECT item_id, count(*) FROM fault_effects GROUP BY 1")
    outcomes = await per_item(engine, OUTCOMES)
    assert len(effects) == count and set(effects.values()) == {1}, effects.most_common(3)
    assert len(outcomes) == count and set(outcomes.values()) == {1}, outcomes.most_common(3)


async def assert_reruns_only_after_handbacks(
    engine: AsyncEngine, executions: ExecutionLog, count: int
) -> None:
    """Where workers die or leases expire: an item ran again only after it was handed back
    (rescued, retried), never more often than it was claimed, never twice under one claim."""
    handbacks = await per_item(engine, HANDBACKS)
    attempts = await per_item(engine, "SELECT id, fault_attempts FROM fault_items")
    limits = {item: min(attempts[item], 1 + handbacks[item]) for item in range(1, count + 1)}
    await executions.assert_runs_within(limits)


async def drained(engine: AsyncEngine) -> bool:
    counts = await status_counts(engine)
    return not counts["Queued"] and not counts["Processing"]


class Workers:
    """Worker subprocesses (``tests.faults.worker``), logs kept in the test's tmp dir."""

    def __init__(self, tmp_path: Path, database_url: str, schema: str, **settings: str) -> None:
        """``settings``: more environment for the workers (``CURATE_DATABASE_POOLING``)."""
        self.tmp_path = tmp_path
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("FAULT_")}
        self.env.update(
            settings,
            CURATE_DATABASE_URL=database_url,
            CURATE_DATABASE_SCHEMA=schema,
            CURATE_RESCUE_INTERVAL_SECONDS="0.3",
            CURATE_LOG_LEVEL="INFO",
            # The tests' own curate (a PYTHONPATH given to pytest comes first) and tests.
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"worker-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.worker", *args],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("worker-*.log")))

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(params=["direct", "pgbouncer"])
def workers(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, schema: str
) -> Iterator[Workers]:
    """Worker processes on the server directly, or through PgBouncer in transaction mode
    (LISTEN then on a direct connection, as in production); the test checks directly."""
    if request.param == "direct":
        pool = Workers(tmp_path, database_url, schema)
    else:
        bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
        pool = Workers(
            tmp_path,
            bouncer.url(database_url),
            schema,
            CURATE_DATABASE_POOLING="transaction",
            CURATE_LISTEN_DATABASE_URL=database_url,
            EXECUTIONS_DATABASE_URL=database_url,
        )
    yield pool
    pool.kill_all()


@pytest.fixture
async def fault_engine(engine: AsyncEngine) -> AsyncEngine:
    await create_fault_tables(engine)
    return engine


@pytest.fixture
def executions(fault_engine: AsyncEngine) -> ExecutionTable:
    """What the worker processes executed."""
    return fault_executions(fault_engine)


LEASED = ("--lease-seconds", "1.0", "--heartbeat-seconds", "0.25")


async def test_workers_killed_at_random_points_lose_and_double_nothing(
    fault_engine: AsyncEngine, workers: Workers, executions: ExecutionTable
) -> None:
    """SIGKILL one of two workers again and again; the rescuer returns what it held. Only
    rows it handed back ran more than once.

    Rescued rows go back to the front of the queue, so a freshly spawned worker often
    claims them first; killed again, and again, they would end Error by design (their
    attempts spent). A budget of 20 attempts keeps this test on loss and doubling."""
    items, kills = 1_500, 8
    await queue_items(fault_engine, items)
    options = ("--work-seconds", "0.004", "--concurrency", "4", "--max-attempts", "20", *LEASED)
    running = [workers.spawn(*options), workers.spawn(*options)]
    chance = random.Random()
    for _ in range(kills):
        target = (await status_counts(fault_engine))["Complete"] + chance.randint(10, 120)

        async def progressed(target: int = target) -> bool:
            counts = await status_counts(fault_engine)
            return counts["Complete"] >= target or not counts["Queued"]

        await wait_until(progressed, seconds=60, what="progress before the next kill")
        victim = running.pop(chance.randrange(len(running)))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        running.append(workers.spawn(*options))

    await wait_until(lambda: drained(fault_engine), seconds=90, what="the queue to drain")
    await assert_each_item_done_exactly_once(fault_engine, items)
    await assert_reruns_only_after_handbacks(fault_engine, executions, items)
    assert "rescued" in workers.logs()


@pytest.mark.parametrize("workers", ["direct"], indirect=True)  # PgBouncer: the tests above
async def test_four_workers_complete_twenty_thousand_items_exactly_once(
    fault_engine: AsyncEngine, workers: Workers, executions: ExecutionTable
) -> None:
    items = 20_000
    await queue_items(fault_engine, items)
    burst = [workers.spawn("--burst", "--concurrency", "5", "--batch-size", "100") for _ in "abcd"]
    for process in burst:
        assert process.wait(timeout=300) == 0, workers.logs()[-3000:]
    await assert_each_item_done_exactly_once(fault_engine, items)
    await executions.assert_once_each(range(1, items + 1))
    share = await per_item(fault_engine, "SELECT worker, count(*) FROM fault_effects GROUP BY 1")
    assert len(share) == 4, share


async def test_sigterm_finishes_running_items_and_requeues_the_rest(
    fault_engine: AsyncEngine, workers: Workers, executions: ExecutionTable
) -> None:
    await queue_items(fault_engine, 20)
    worker = workers.spawn(
        "--work-seconds", "0.4", "--concurrency", "2", "--batch-size", "10",
        CURATE_SHUTDOWN_GRACE_SECONDS="20",
    )  # fmt: skip

    async def busy() -> bool:
        counts = await status_counts(fault_engine)
        return counts["Complete"] >= 2 and counts["Processing"] >= 4

    await wait_until(busy, seconds=30, what="items running and claimed")
    worker.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert worker.wait(timeout=20) == 0, workers.logs()
    assert time.monotonic() - sent < 5  # running items take 0.4 s: no need for the grace

    counts = await status_counts(fault_engine)
    assert set(counts) <= {"Complete", "Queued"}, counts
    assert counts["Queued"] >= 1
    async with fault_engine.connect() as conn:
        attempts = await conn.execute(
            select(FaultItem.fault_attempts).where(FaultItem.fault_status == "Queued")  # type: ignore[attr-defined]
        )
        assert set(attempts.scalars()) == {0}  # handed back unstarted, attempt uncounted
    effects = await per_item(fault_engine, "SELECT item_id, count(*) FROM fault_effects GROUP BY 1")
    assert sum(effects.values()) == counts["Complete"] and set(effects.values()) == {1}
    await executions.assert_once_each(effects)  # the released rows never started
    assert "released" in workers.logs()


async def test_a_stalled_worker_whose_row_was_rescued_cannot_write_its_outcome(
    settings: curate.CurateSettings, fault_engine: AsyncEngine
) -> None:
    """Worker A stalls past its lease; the rescuer hands the row to B, which completes it;
    when A wakes up, its outcome and its effect are refused."""
    await queue_items(fault_engine, 1)
    stalled, wake_up = asyncio.Event(), asyncio.Event()
    executions = ExecutionLog(FaultItem, "fault")

    async def stalls(item_id: int, session: AsyncSession) -> None:
        session.add(FaultEffect(item_id=item_id, worker="A"))
        stalled.set()
        await wake_up.wait()

    worker_a = curate.Runtime(settings.model_copy(update={"worker_id": "A"}))
    worker_b = curate.Runtime(settings.model_copy(update={"worker_id": "B"}))
    slow_a = curate.Workflow("fault", model=FaultItem, service=executions.service(stalls))
    flow_b = fault_workflow("B", 0.0, executions)
    try:
        # A's heartbeat never comes in time (as if its event loop or network stalled).
        stalled_config = RunConfig(lease_seconds=0.3, heartbeat_seconds=60)
        run_a = asyncio.create_task(worker_a.run(slow_a, stalled_config))
        await stalled.wait()

        async def rescued() -> bool:
            return bool(await rescue_expired(await worker_b.context(flow_b)))

        await wait_until(rescued, seconds=10, what="the rescuer to take A's row")
        assert (await worker_b.run(flow_b)).completed == 1
        wake_up.set()
        result_a = await run_a
    finally:
        await worker_a.close()
        await worker_b.close()

    assert (result_a.completed, result_a.dropped) == (0, 1)
    effects = await per_item(fault_engine, "SELECT worker, count(*) FROM fault_effects GROUP BY 1")
    assert effects == {"B": 1}
    await assert_each_item_done_exactly_once(fault_engine, 1)
    # A ran it under the first claim, B under the claim after the rescue: twice, no more.
    await executions.assert_runs_within({1: 2})
    assert [(e.worker, e.attempts) for e in await executions.executions()] == [("A", 1), ("B", 2)]


async def test_expired_leases_past_max_attempts_end_in_error(
    runtime: curate.Runtime, fault_engine: AsyncEngine
) -> None:
    await queue_items(fault_engine, 2)
    async with fault_engine.begin() as conn:  # two rows a dead worker held: attempts 1 and 3
        await conn.execute(
            update(FaultItem).values(
                fault_status="Processing",
                fault_claimed_by="dead-worker",
                fault_lease_until=func.now() - text("interval '1 second'"),
                fault_attempts=func.greatest(1, (FaultItem.id - 1) * 3),
            )
        )
    flow = fault_workflow("w", 0.0, retry=curate.RetryPolicy(max_attempts=3))
    rescued = await rescue_expired(await runtime.context(flow))
    assert rescued is not None and len(rescued) == 2
    async with fault_engine.connect() as conn:
        rows = (await conn.execute(select(FaultItem.__table__).order_by(FaultItem.id))).all()
    assert [(r.fault_status.value, r.fault_claimed_by) for r in rows] == [
        ("Queued", None),
        ("Error", None),
    ]
    assert rows[0].fault_error == "LeaseExpired: the lease expired on attempt 1 of 3; queued again"
    assert rows[1].fault_error == (
        "LeaseExpired: the lease expired on attempt 3 of 3; no attempts left"
    )


async def test_only_one_worker_rescues_at_a_time(
    runtime: curate.Runtime, fault_engine: AsyncEngine
) -> None:
    flow = fault_workflow("w", 0.0)
    ctx = await runtime.context(flow)
    async with fault_engine.begin() as conn:  # another worker is rescuing right now
        await conn.execute(select(func.pg_advisory_xact_lock(advisory_lock_key(ctx))))
        assert await rescue_expired(ctx) is None
    assert await rescue_expired(ctx) == []


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A PostgreSQL this test may stop and start: never the shared one."""
    data_dir = tmp_path / "pg" / "data"
    server = await asyncio.to_thread(start_embedded_postgres, data_dir)
    yield server.url, data_dir
    if (data_dir / "postmaster.pid").exists():
        # A server the test restarted is a new process the wheel does not know: stop it here.
        pg_ctl(data_dir, "-m", "fast", "stop")
    await asyncio.to_thread(server.release)


def pg_ctl(data_dir: Path, *args: str) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # type: ignore[attr-defined]

    run_as = {"user": "embedded_postgres"} if os.geteuid() == 0 else {}
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), "-w", *args],
        check=True,
        capture_output=True,
        timeout=60,
        **run_as,  # type: ignore[arg-type]
    )


async def test_postgres_restarted_mid_run_loses_nothing(
    own_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, data_dir = own_server
    runtime = curate.configure(curate.CurateSettings(database_url=url, worker_id="checker"))
    engine = await runtime.database.engine()
    await create_fault_tables(engine)
    items = 600
    await queue_items(engine, items)
    pool = Workers(tmp_path, url, "public")
    worker = pool.spawn("--work-seconds", "0.005", "--concurrency", "4", *LEASED)
    try:

        async def under_way() -> bool:
            return (await status_counts(engine))["Complete"] >= 100

        await wait_until(under_way, seconds=60, what="100 items complete")
        await runtime.database.dispose()
        pg_ctl(data_dir, "-m", "fast", "stop")
        assert worker.poll() is None
        pg_ctl(
            data_dir, "-l", str(data_dir / "restart.log"),
            "-o", f"-h '' -k {data_dir}", "start",
        )  # fmt: skip
        engine = await runtime.database.engine()
        await wait_until(lambda: drained(engine), seconds=90, what="the queue to drain")
        assert worker.poll() is None, pool.logs()  # it survived the outage
        await assert_each_item_done_exactly_once(engine, items)
        await assert_reruns_only_after_handbacks(engine, fault_executions(engine), items)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        pool.kill_all()
        await runtime.database.dispose()
    logs = pool.logs()
    assert "retrying" in logs or "the next run tries again" in logs, logs[-3000:]


async def run_while(
    runtime: curate.Runtime, meddle: str, service_note: str = "ran"
) -> curate.RunResult:
    """Run one item whose row ``meddle`` (SQL) changes while the service is in flight."""
    started, go_on = asyncio.Event(), asyncio.Event()

    async def service(item_id: int, session: AsyncSession) -> None:
        session.add(FaultEffect(item_id=item_id, worker=service_note))
        started.set()
        await go_on.wait()

    flow = curate.Workflow("fault", model=FaultItem, service=service)
    run = asyncio.create_task(flow.run(runtime))
    await started.wait()
    engine = await runtime.database.engine()
    async with engine.begin() as conn:
        await conn.execute(text(meddle))
    go_on.set()
    return await run


async def test_a_row_deleted_while_it_runs_is_dropped_quietly(
    runtime: curate.Runtime, fault_engine: AsyncEngine
) -> None:
    await queue_items(fault_engine, 1)
    result = await run_while(runtime, "DELETE FROM fault_items")
    assert (result.claimed, result.dropped) == (1, 1)
    assert await per_item(fault_engine, "SELECT item_id, 1 FROM fault_effects") == {}


async def test_a_row_requeued_by_hand_while_it_runs_keeps_the_newer_state(
    runtime: curate.Runtime, fault_engine: AsyncEngine
) -> None:
    await queue_items(fault_engine, 1)
    result = await run_while(
        runtime, "UPDATE fault_items SET fault_status = 'Queued', fault_error = 'redo please'"
    )
    assert result.completed == 1  # the run finished its work...
    async with fault_engine.connect() as conn:
        row = (await conn.execute(select(FaultItem.__table__))).one()
    assert (row.fault_status.value, row.fault_error) == ("Queued", "redo please")  # ...not over it


async def test_unknown_status_values_are_left_alone(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    loose = await create_table(
        engine,
        "loose",
        Column("id", Integer, primary_key=True),
        Column("work_status", String),
        Column("work_error", String),
    )
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO loose VALUES (1, 'Queued', NULL), (2, 'queued ', NULL), (3, '', NULL)"
            )
        )

    result = await curate.Workflow("work", model=loose, service=noop).run(runtime)
    assert (result.claimed, result.completed) == (1, 1)
    async with engine.connect() as conn:
        statuses = (await conn.execute(text("SELECT work_status FROM loose ORDER BY id"))).all()
    assert [s for (s,) in statuses] == ["Complete", "queued ", ""]


async def test_megabytes_of_error_text_are_cut_and_stored(
    runtime: curate.Runtime, fault_engine: AsyncEngine
) -> None:
    await queue_items(fault_engine, 1)

    async def explodes(item_id: int, session: AsyncSession) -> None:
        raise ValueError("\x00" + "boom " * 1_000_000)

    flow = curate.Workflow(
        "fault", model=FaultItem, service=explodes, retry=curate.RetryPolicy(max_attempts=1)
    )
    assert (await flow.run(runtime)).failed == 1
    async with fault_engine.connect() as conn:
        error = (await conn.execute(select(FaultItem.fault_error))).scalar_one()  # type: ignore[attr-defined]
    assert error.startswith("ValueError: \\x00boom boom")
    assert len(error) == 2_000


async def test_connection_errors_are_told_from_statement_errors(engine: AsyncEngine) -> None:
    """Real errors: a terminated backend is worth retrying, a bad statement is not."""
    from curate.engine.backoff import is_connection_error

    async with engine.connect() as victim, engine.connect() as killer:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception) as terminated:
            await victim.execute(text("SELECT 1"))
    assert is_connection_error(terminated.value), repr(terminated.value)

    async with engine.connect() as conn:
        with pytest.raises(Exception) as mistake:
            await conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_connection_error(mistake.value)


async def test_the_heartbeat_keeps_a_long_item_alive_on_a_short_lease(
    runtime: curate.Runtime, fault_engine: AsyncEngine
) -> None:
    """An item runs three times its lease; rescues meanwhile find nothing to take."""
    await queue_items(fault_engine, 1)
    rescuer = fault_workflow("rescuer", 0.0)
    finished = asyncio.Event()

    async def long_item(item_id: int, session: AsyncSession) -> None:
        session.add(FaultEffect(item_id=item_id, worker="long"))
        ends = asyncio.get_running_loop().time() + 1.5

        async def lease_outlived() -> bool:
            assert await rescue_expired(await runtime.context(rescuer)) == []
            return asyncio.get_running_loop().time() > ends

        await wait_until(lease_outlived, poll_seconds=0.1, what="three lease lengths")
        finished.set()

    flow = curate.Workflow(
        "fault", model=FaultItem, service=long_item, lease_seconds=0.5, heartbeat_seconds=0.1
    )
    result = await flow.run(runtime)
    assert finished.is_set() and result.completed == 1
    await assert_each_item_done_exactly_once(fault_engine, 1)


async def test_seed_tables_are_rescued_by_updated_at_when_a_stale_age_is_set(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    seedish = await create_table(
        engine,
        "seedish",
        Column("id", Integer, primary_key=True),
        Column("status", String),
        Column("error", String),
        Column("updated_at", DateTime(timezone=True)),
    )
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO seedish VALUES (1, 'Processing', NULL, now() - interval '1 hour'),"
                " (2, 'Processing', NULL, now())"
            )
        )

    await curate.run_job_loop(
        model=seedish,
        status_enum=curate.ProcessingStatus,
        queued_status=curate.ProcessingStatus.Queued,
        processing_status=curate.ProcessingStatus.Processing,
        completed_status=curate.ProcessingStatus.Complete,
        failed_status=curate.ProcessingStatus.Error,
        processing_function=noop,
        batch_size=10,
        stale_after_seconds=600,
    )
    assert await runtime.rescue() == 1
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, status FROM seedish ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [(1, "Queued"), (2, "Processing")]


async def test_tables_that_cannot_be_rescued_say_so_at_start_up(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING")
    try:
        bare = await create_table(
            engine,
            "bare",
            Column("id", Integer, primary_key=True),
            Column("st", String),
            Column("err", String),
        )
        flow = curate.Workflow(
            "bare", model=bare, service=noop, columns=curate.ColumnNames(status="st", error="err")
        )
        runtime.register(flow)
    finally:
        logger.remove(sink)
    [warning] = [line for line in lines if "no lease column" in line]
    assert "stay there until re-queued by hand" in warning
    assert "add the lease columns" in warning
