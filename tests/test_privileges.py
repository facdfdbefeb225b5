"""curate run by an app role that may read and write rows but not create tables.

The role has USAGE on a fresh schema and SELECT/UPDATE on the workflow's table in it, no
CREATE anywhere (PostgreSQL 15's default in ``public`` too): workflows run, curate says
once which of its tables is missing and how to create it, a rate limit is not silently
dropped, pause is refused; once the owner created curate's tables with the migration
helper (and granted them), pause and the rate limit work for that role.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

import curate
from curate import ColumnNames, ProcessingStatus, Workflow, operations
from curate.migrations import create_curate_tables
from curate.sql import own_tables as own_tables_sql
from curate.testing import wait_until
from tests.helpers import insert_items, noop, run_migration_step, status_counts
from tests.models import Item
from tests.test_cli import ROOT, Curate, assert_one_line_error
from tests.test_cli import cli as cli  # the fixture

CONTROLS, RUNS = "curate_workflow_controls", "curate_periodic_runs"
ATTEMPTS = "curate_attempts"
WORK = Workflow("work", model=Item, service=noop)
LIMITED = Workflow(
    "limited", model=Item, service=noop, columns=ColumnNames.for_prefix("work"), rate_limit=5.0
)
"""Over the same rows as `WORK`, under a rate limit."""


@dataclass(frozen=True)
class AppRole:
    """A role without CREATE, its schema, the owner's engine on that schema, and curate's
    settings for the role."""

    name: str
    schema: str
    owner: AsyncEngine
    settings: curate.CurateSettings

    async def grant_curate_tables(self, *, attempts: bool = True) -> None:
        """What the owner grants the app role on curate's tables once they exist (with
        ``attempts`` False: what an older grant script gave, before the history)."""
        async with self.owner.begin() as conn:
            await conn.execute(
                text(f"GRANT SELECT, INSERT, UPDATE ON {CONTROLS}, {RUNS} TO {self.name}")
            )
            if attempts:
                await conn.execute(
                    text(f"GRANT SELECT, INSERT, DELETE ON {ATTEMPTS} TO {self.name}")
                )

    async def curate_tables(self) -> set[str]:
        """curate's tables in the schema."""
        async with self.owner.connect() as conn:
            found = await conn.scalars(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = :schema"
                    " AND tablename IN (:controls, :runs)"
                ),
                {"schema": self.schema, "controls": CONTROLS, "runs": RUNS},
            )
            return set(found)

    async def tables_it_owns(self) -> int:
        async with self.owner.connect() as conn:
            owned = await conn.scalar(
                text("SELECT count(*) FROM pg_class WHERE relowner = CAST(:role AS regrole)"),
                {"role": self.name},
            )
            return int(owned)


@pytest.fixture
async def app_role(database_url: str) -> AsyncIterator[AppRole]:
    """A fresh role and schema, with the ``items`` table of tests/models.py; both dropped
    afterwards, whatever the test did."""
    name = f"curate_app_{uuid.uuid4().hex[:12]}"
    owner = create_async_engine(
        database_url, connect_args={"server_settings": {"search_path": name}}
    )
    role_url = make_url(database_url).set(username=name, password=None)
    try:
        async with owner.begin() as conn:
            await conn.execute(text(f"CREATE ROLE {name} LOGIN"))
            await conn.execute(text(f"CREATE SCHEMA {name}"))
            await conn.run_sync(Item.__table__.create)  # type: ignore[attr-defined]
            await conn.execute(text(f"GRANT USAGE ON SCHEMA {name} TO {name}"))
            await conn.execute(text(f"GRANT SELECT, UPDATE ON items TO {name}"))
        yield AppRole(
            name,
            name,
            owner,
            curate.CurateSettings(
                database_url=role_url.render_as_string(hide_password=False),
                database_schema=name,
                worker_id="app-role",
                pool_size=2,
            ),
        )
    finally:
        async with owner.begin() as conn:
            await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": name},
            )
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
            await conn.execute(text(f"DROP ROLE IF EXISTS {name}"))
        await owner.dispose()


@pytest.fixture
async def app(app_role: AppRole) -> AsyncIterator[curate.Runtime]:
    """curate in the app, connected as the role."""
    runtime = curate.Runtime(app_role.settings)
    yield runtime
    await runtime.close()


@pytest.fixture
def env(app_role: AppRole) -> dict[str, str]:
    """The `cli` fixture's environment: the role, its schema, tests/cli_app.py."""
    return {
        **os.environ,
        "CURATE_DATABASE_URL": app_role.settings.database_url or "",
        "CURATE_DATABASE_SCHEMA": app_role.schema,
        "CURATE_APP": "tests.cli_app:WORKFLOWS",
        "CURATE_LOG_LEVEL": "WARNING",
    }


async def queue_all(owner: AsyncEngine) -> None:
    async with owner.begin() as conn:
        await conn.execute(update(Item).values(work_status=ProcessingStatus.Queued))


def lines_with(log_lines: list[str], fragment: str) -> list[str]:
    return [line for line in log_lines if fragment in line]


async def test_workflows_run_without_curate_tables_and_pause_works_once_migrated(
    app_role: AppRole, app: curate.Runtime, log_lines: list[str]
) -> None:
    owner, schema = app_role.owner, app_role.schema
    await insert_items(owner, 3)

    assert (await app.run(WORK)).completed == 3
    await queue_all(owner)
    assert (await app.run(WORK)).completed == 3
    [warning] = lines_with(log_lines, f"{CONTROLS} does not exist in schema {schema}")
    assert "WARNING" in warning and "pause and rate limits are unavailable" in warning
    assert "curate db upgrade" in warning and "create_curate_tables()" in warning
    assert await app_role.curate_tables() == set()
    assert await app_role.tables_it_owns() == 0

    # A rate limit may protect an external API: without its table, nothing is claimed.
    await queue_all(owner)
    for _ in range(2):
        limited = await app.run(LIMITED)
        assert limited.claimed == 0
        [reason] = limited.errors
        assert f"{CONTROLS} does not exist in schema {schema}" in reason
        assert "rate limit of workflow limited needs it" in reason and "curate db upgrade" in reason
    assert len(lines_with(log_lines, "rate limit of workflow limited needs it")) == 2  # each run
    engine = await app.database.engine()
    with pytest.raises(curate.ConfigurationError, match=r"cannot pause work: .*curate db upgrade"):
        await operations.pause_workflow(engine, WORK, "maintenance")

    await run_migration_step(owner, create_curate_tables)  # as the owner
    await app_role.grant_curate_tables()
    assert await app_role.curate_tables() == {CONTROLS, RUNS}

    # The same worker uses them from its next claim: the rate limit, then a pause.
    assert (await app.run(LIMITED)).completed == 3
    await queue_all(owner)
    assert await operations.pause_workflow(engine, WORK, "maintenance") is True
    assert (await app.run(WORK)).claimed == 0
    assert (await status_counts(owner))["Queued"] == 3
    assert await operations.resume_workflow(engine, WORK) is True
    assert (await app.run(WORK)).completed == 3
    assert len(lines_with(log_lines, "pause and rate limits are unavailable")) == 1
    assert await app_role.tables_it_owns() == 0


async def test_a_periodic_job_without_its_table_says_so_once_and_does_not_run(
    app_role: AppRole, app: curate.Runtime, log_lines: list[str]
) -> None:
    calls: list[datetime] = []

    @curate.periodic(every_seconds=3600)
    async def hourly(scheduled_at: datetime) -> None:
        calls.append(scheduled_at)

    runner = hourly.runner(app)
    for _ in range(3):
        await runner.tick()
    assert calls == []
    [error] = lines_with(log_lines, "periodic job hourly does not run")
    assert "ERROR" in error and f"{RUNS} does not exist in schema {app_role.schema}" in error
    assert "curate db upgrade" in error and "create_curate_tables()" in error
    assert await app_role.tables_it_owns() == 0

    await run_migration_step(app_role.owner, create_curate_tables)
    await app_role.grant_curate_tables()
    await runner.tick()  # the first tick that finds the table only catches up, as at start-up
    await runner.tick()
    assert len(calls) == 1
    async with app_role.owner.connect() as conn:
        assert await conn.scalar(select(text("count(*)")).select_from(text(RUNS))) == 1


async def test_pause_on_the_command_line_needs_the_table_and_status_reads_without_it(
    app_role: AppRole, cli: Curate
) -> None:
    status = await cli("status", "--workflow", "work", "--json")
    assert status.code == 0, status
    assert '"paused": false' in status.out

    refused = await cli("pause", "work")
    assert_one_line_error(
        refused,
        2,
        f"cannot pause work: curate's table {CONTROLS} does not exist in schema {app_role.schema}",
        "curate db upgrade",
    )
    assert await app_role.curate_tables() == set()

    await run_migration_step(app_role.owner, create_curate_tables)
    await app_role.grant_curate_tables()
    paused = await cli("pause", "work", "--reason", "supplier down")
    assert paused.code == 0 and paused.out.startswith("paused work"), paused
    resumed = await cli("resume", "work")
    assert (resumed.code, resumed.out) == (0, "resumed work\n")


async def test_db_upgrade_creates_curate_tables_and_running_it_again_is_fine(
    app_role: AppRole, database_url: str, cli: Curate, tmp_path: Path
) -> None:
    """On a project whose migrations do not create curate's tables (the sample app), as
    the owner: `curate db upgrade` creates them in the configured schema."""
    project = tmp_path / "photoapp"
    shutil.copytree(ROOT / "examples" / "photoapp", project)
    where = f"(schema {app_role.schema})"

    first = await cli("db", "upgrade", cwd=project, CURATE_DATABASE_URL=database_url)
    assert first.code == 0, first
    migrated, own_tables = first.out.splitlines()[-2:]
    assert migrated.endswith(f"{where}: now at 0001 (head)"), first.out
    created = ", ".join(own_tables_sql.TABLES)
    assert own_tables.endswith(f"{where}: curate's tables: created {created}")
    assert await app_role.curate_tables() == {CONTROLS, RUNS}

    again = await cli("db", "upgrade", cwd=project, CURATE_DATABASE_URL=database_url)
    assert again.code == 0, again
    assert again.out.endswith(f"{where}: curate's tables: {created} already there\n")
    assert await app_role.curate_tables() == {CONTROLS, RUNS}


async def test_without_insert_on_the_history_outcomes_are_written_and_it_is_said_once(
    app_role: AppRole, app: curate.Runtime, log_lines: list[str]
) -> None:
    """An older grant script that knows nothing of curate_attempts: items still complete,
    without history, with one warning naming the grant; the grant turns it on at once."""
    owner = app_role.owner
    app.settings = app.settings.model_copy(update={"attempt_history": "all"})  # completions too
    await run_migration_step(owner, create_curate_tables)
    await app_role.grant_curate_tables(attempts=False)
    await insert_items(owner, 3)
    assert (await app.run(WORK)).completed == 3
    await queue_all(owner)
    assert (await app.run(WORK)).completed == 3
    [warning] = lines_with(log_lines, f"may not insert into {ATTEMPTS}")
    assert "WARNING" in warning and "grant it INSERT" in warning
    async with owner.connect() as conn:
        assert await conn.scalar(text(f"SELECT count(*) FROM {ATTEMPTS}")) == 0

    await app_role.grant_curate_tables()
    await queue_all(owner)
    assert (await app.run(WORK)).completed == 3
    engine = await app.database.engine()
    history = await operations.read_attempts(engine, WORK, 1)
    assert history is not None and [a.outcome for a in history] == ["completed"]


async def test_without_select_on_the_cancel_requests_heartbeats_still_renew(
    app_role: AppRole, app: curate.Runtime, log_lines: list[str]
) -> None:
    """The heartbeat's look for cancel requests is a statement of its own: refused (an
    older grant script), it is said once, and the leases are renewed all the same."""
    owner = app_role.owner
    await run_migration_step(owner, create_curate_tables)
    await app_role.grant_curate_tables()  # nothing on curate_cancellations
    await insert_items(owner, 1)
    renewed = asyncio.Event()

    async def until_renewed(item_id: int, session: AsyncSession) -> None:
        first = await session.scalar(select(Item.work_lease_until).where(Item.id == item_id))

        async def later_lease() -> bool:
            async with owner.connect() as conn:
                lease = await conn.scalar(select(Item.work_lease_until).where(Item.id == item_id))
            return lease is not None and first is not None and lease > first

        await wait_until(later_lease, seconds=10, what="the lease renewed twice over")
        renewed.set()

    beating = Workflow("work", model=Item, service=until_renewed, heartbeat_seconds=0.1)
    assert (await app.run(beating)).completed == 1 and renewed.is_set()
    [said] = lines_with(log_lines, "could not look for cancel requests")
    assert "permission denied for table curate_cancellations" in said
