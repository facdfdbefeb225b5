"""Fan-in on real PostgreSQL: a folder is queued for ``finalise`` once all its files are
scanned and the folder itself gathered; exactly once when its last two files finish at
the same moment in two transactions (the interleaving forced with the parents' lock),
without deadlock when two transactions finish files of the same folders in opposite
orders, and across worker processes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import ProcessingStatus
from curate.fan_in import Children
from curate.migrations import drop_fan_in
from curate.preflight import unmigrated
from curate.sql import fan_in as fan_in_sql
from curate.testing import WorkflowHarness, wait_until
from tests.executions import ExecutionTable
from tests.fan_in_app import (
    WORKFLOWS,
    Base,
    File,
    Folder,
    create_the_fan_in,
    finalise,
    gather,
    scan,
    scans,
)
from tests.helpers import curate_run, run_migration_step

Queued, Processing, Complete, Error = (
    ProcessingStatus.Queued,
    ProcessingStatus.Processing,
    ProcessingStatus.Complete,
    ProcessingStatus.Error,
)

AUDIT = (
    "CREATE TABLE queued_audit (folder_id integer NOT NULL)",
    "CREATE FUNCTION audit_queued() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN INSERT INTO queued_audit VALUES (NEW.id); RETURN NULL; END $$",
    "CREATE TRIGGER audit_queued AFTER UPDATE OF finalise_status ON folders FOR EACH ROW"
    " WHEN (NEW.finalise_status = 'Queued') EXECUTE FUNCTION audit_queued()",
)
"""Counts every time a folder is queued for finalise: the test's own witness."""


@pytest.fixture(autouse=True)
async def _scans_log() -> AsyncIterator[None]:
    """The scans' log writes through an engine of its own: one per test (loop, schema)."""
    yield
    await scans.close()


async def make_tables(engine: AsyncEngine, folders: dict[int, list[int]]) -> None:
    """Folders (queued for gather) and their files (queued for scan), the fan-in, the audit."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        for statement in AUDIT:
            await conn.execute(text(statement))
        await conn.execute(insert(Folder), [{"id": f, "gather_status": Queued} for f in folders])
        rows = [
            {"id": file, "folder_id": f, "scan_status": Queued}
            for f, files in folders.items()
            for file in files
        ]
        if rows:
            await conn.execute(insert(File), rows)
    await run_migration_step(engine, create_the_fan_in)
    await ExecutionTable.create(engine)  # the scans log their starts


async def queued_times(engine: AsyncEngine) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT folder_id, count(*) FROM queued_audit GROUP BY folder_id")
        )
        return {folder_id: count for folder_id, count in rows}


async def folder(engine: AsyncEngine, folder_id: int) -> Folder:
    async with engine.connect() as conn:
        return (await conn.execute(select(Folder.__table__).where(Folder.id == folder_id))).one()


async def test_a_folder_waits_for_its_files_and_its_own_gathering(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await make_tables(engine, {1: [11, 12, 13], 2: []})
    async with engine.begin() as conn:  # 13 never enters the scan: it does not count
        await conn.execute(update(File).where(File.id == 13).values(scan_status=None))
    harness = WorkflowHarness(runtime)

    async with engine.begin() as conn:  # 12 fails for good: a final status too
        await conn.execute(update(File).where(File.id == 12).values(scan_status=Error))
    await harness.drain(scan)
    assert await queued_times(engine) == {}  # the folder is not gathered yet
    await harness.drain(gather)
    # Folder 1: gathered and its files done; folder 2 has none: both queued, once.
    assert await queued_times(engine) == {1: 1, 2: 1}
    await harness.drain(finalise)
    done = await folder(engine, 1)
    assert (done.finalise_status, done.files_done, done.finalised_times) == (Complete, 1, 1)

    # A file scanned again later queues its folder again, for a fresh aggregate.
    sessions = await runtime.database.sessionmaker()
    async with sessions() as session, session.begin():
        await scan.queue(session, [12])
    assert await queued_times(engine) == {1: 1, 2: 1}  # not while the file is pending
    await harness.drain(scan)
    assert await queued_times(engine) == {1: 2, 2: 1}
    await harness.drain(finalise)
    assert (await folder(engine, 1)).files_done == 2


async def test_two_last_files_finishing_at_once_queue_their_folder_exactly_once(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """Both transactions write their file's final status, then wait at commit for the
    folder's lock (held by the test): the worst interleaving. Released, the first checks
    while the other's file is still uncommitted (not final to it) and queues nothing; the
    second checks after the first committed and queues the folder. A check that did not
    wait for the lock, or read an older snapshot, would see neither file final: the
    folder would never be queued."""
    await make_tables(engine, {1: [11, 12]})
    async with engine.begin() as conn:
        await conn.execute(update(Folder).values(gather_status=Complete))
        await conn.execute(update(File).values(scan_status=Processing))
    key = fan_in_sql.lock_key('"folders"', "finalise", "'1'")
    async with engine.connect() as holder:
        await holder.scalar(text(f"SELECT pg_advisory_lock({key})"))

        async def finish(file_id: int) -> None:
            async with engine.begin() as conn:
                await conn.execute(
                    update(File).where(File.id == file_id).values(scan_status=Complete)
                )

        racers = [asyncio.create_task(finish(11)), asyncio.create_task(finish(12))]

        async def both_waiting() -> bool:
            waiting = await holder.scalar(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                    " WHERE l.locktype = 'advisory' AND NOT l.granted"
                    " AND d.datname = current_database()"
                )
            )
            return waiting == 2

        await wait_until(both_waiting, seconds=10, what="both commits waiting for the lock")
        assert await queued_times(engine) == {}
        await holder.scalar(text(f"SELECT pg_advisory_unlock({key})"))
        await holder.commit()
        await asyncio.wait_for(asyncio.gather(*racers), 10)
    assert await queued_times(engine) == {1: 1}
    assert (await folder(engine, 1)).finalise_status == Queued


async def test_two_transactions_finishing_files_of_two_folders_in_opposite_orders(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    """A finishes a file of folder 1, then one of folder 2; B the other way round. Were the
    folders' locks taken as each row changed, A would hold 1 and wait for 2 while B held 2
    and waited for 1: a deadlock. They are taken at commit, in folder order."""
    await make_tables(engine, {1: [11, 12], 2: [21, 22]})
    async with engine.begin() as conn:
        await conn.execute(update(Folder).values(gather_status=Complete))
        await conn.execute(update(File).values(scan_status=Processing))

    async def finish(first: int, second: int, both_wrote: asyncio.Barrier) -> None:
        async with engine.begin() as conn:
            for file_id in (first, second):
                await conn.execute(
                    update(File).where(File.id == file_id).values(scan_status=Complete)
                )
            await both_wrote.wait()  # neither commits before both wrote both rows

    both_wrote = asyncio.Barrier(2)
    await asyncio.wait_for(
        asyncio.gather(finish(11, 21, both_wrote), finish(22, 12, both_wrote)), 20
    )
    assert await queued_times(engine) == {1: 1, 2: 1}


async def test_dropping_the_fan_in_stops_it(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    await make_tables(engine, {1: [11]})
    await run_migration_step(
        engine, lambda: drop_fan_in("folders", "finalise", child_table="files")
    )
    harness = WorkflowHarness(runtime)
    await harness.drain(gather)
    await harness.drain(scan)
    assert await queued_times(engine) == {}
    await run_migration_step(engine, create_the_fan_in)  # and it comes back
    sessions = await runtime.database.sessionmaker()
    async with sessions() as session, session.begin():
        await scan.queue(session, [11])
    await harness.drain(scan)
    assert await queued_times(engine) == {1: 1}


async def test_worker_processes_finishing_sibling_files_together_finalise_each_folder_once(
    runtime: curate.Runtime, engine: AsyncEngine, database_url: str, schema: str, tmp_path: Path
) -> None:
    """Two `curate run` processes, one file at a time each; a file's scan returns only once
    its sibling started, so the two files of every folder run on the two workers and finish
    together. Every folder is queued once and finalised once."""
    folders = {f: [10 * f + 1, 10 * f + 2] for f in range(1, 9)}
    await make_tables(engine, folders)
    async with engine.begin() as conn:
        await conn.execute(update(Folder).values(gather_status=None))  # scans run first
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_")}
    env |= {
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "CURATE_APP": "tests.fan_in_app:WORKFLOWS",
        "FAN_IN_SIBLING_BARRIER": "1",
        # One file at a time per worker, none claimed ahead: one run (no LISTEN, so no
        # woken run beside the polled one) of one item. The two files of a folder must
        # then run on the two workers, and the barrier makes them finish together.
        "CURATE_LISTEN_NOTIFY": "false",
        "SCAN_SCHEDULER_RUN_MAX_ITEMS": "1",
    }
    with curate_run(env, "one", tmp_path / "one.log"), curate_run(env, "two", tmp_path / "two.log"):

        async def scanned() -> bool:
            async with engine.connect() as conn:
                done = await conn.scalar(select(func.count()).where(File.scan_status == Complete))
            return done == 16

        await wait_until(scanned, seconds=60, what="16 files scanned")
        sessions = await runtime.database.sessionmaker()
        async with sessions() as session, session.begin():
            await gather.queue(session, list(folders))

        async def finalised() -> bool:
            async with engine.connect() as conn:
                done = await conn.scalar(
                    select(func.count()).where(Folder.finalise_status == Complete)
                )
            return done == 8

        await wait_until(finalised, seconds=60, what="8 folders finalised")
    assert await queued_times(engine) == {f: 1 for f in folders}
    async with engine.connect() as conn:
        times = dict((await conn.execute(select(Folder.id, Folder.finalised_times))).all())
    assert times == {f: 1 for f in folders}
    ran_on: dict[int, set[str]] = {}
    for execution in await ExecutionTable(File, "scan", engine).executions():
        ran_on.setdefault(execution.item_id // 10, set()).add(execution.worker)
    assert ran_on == {f: {"one", "two"} for f in folders}  # each folder's race: two workers


async def test_the_start_up_check_names_a_missing_fan_in_and_its_migration(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await make_tables(engine, {1: [11]})
    assert (await unmigrated(runtime.database, WORKFLOWS)).unindexed == ()
    await run_migration_step(
        engine, lambda: drop_fan_in("folders", "finalise", child_table="files")
    )
    [line] = (await unmigrated(runtime.database, WORKFLOWS)).unindexed
    assert line.startswith("workflow finalise: waits for scan but table files in schema ")
    assert line.endswith(
        "has no fan-in trigger, so its items are never queued; add it in a migration"
        " (curate.migrations.create_fan_in('folders', 'finalise', child_table='files',"
        " child_workflow='scan', parent_key='folder_id', after_workflow='gather'))"
    )
    wrong_key = curate.Workflow(
        "finalise",
        model=Folder,
        service=finalise.service,
        waits_for=Children(scan, parent_key="folder"),
    )
    with pytest.raises(curate.ConfigurationError, match="table 'files' has no such column"):
        await unmigrated(runtime.database, [wrong_key])
