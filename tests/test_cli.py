"""The operations commands as a user runs them: the installed `curate` script in a
subprocess, on the real PostgreSQL and the test's schema, with tests/cli_app.py as the app."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import ProcessingStatus
from curate.sql import own_tables as own_tables_sql
from curate.testing import wait_until
from tests.models import Item, SeedItem, SeedStatus

ROOT = Path(__file__).resolve().parent.parent
CURATE = Path(sys.executable).with_name("curate")
UNREACHABLE = "postgresql://postgres:secret@127.0.0.1:9/x"
NOT_PAUSED = {"paused": False, "paused_at": None, "paused_reason": None, "rate_limit": None}
CURATE_TABLES = ", ".join(own_tables_sql.TABLES)

Queued, Processing, Complete, Error = (
    ProcessingStatus.Queued,
    ProcessingStatus.Processing,
    ProcessingStatus.Complete,
    ProcessingStatus.Error,
)


@dataclass
class Result:
    code: int
    out: str
    err: str


Curate = Callable[..., Awaitable[Result]]


@pytest.fixture
def env(database_url: str, schema: str) -> dict[str, str]:
    return {
        **os.environ,
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "CURATE_APP": "tests.cli_app:WORKFLOWS",
        "CURATE_LOG_LEVEL": "WARNING",
    }


async def start(
    env: dict[str, str], *args: str, stdin: bool = False, cwd: Path = ROOT
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(CURATE),
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
def cli(env: dict[str, str]) -> Curate:
    """``await cli("status", "--json", stdin="y\\n", env={...}, cwd=...)``: run to the end."""

    async def run(
        *args: str, stdin: str | None = None, cwd: Path = ROOT, **extra_env: str
    ) -> Result:
        process = await start({**env, **extra_env}, *args, stdin=stdin is not None, cwd=cwd)
        given = stdin.encode() if stdin is not None else None
        out, err = await asyncio.wait_for(process.communicate(given), 60)
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    return run


def ago(seconds: float) -> ColumnElement[datetime]:
    return func.now() - timedelta(seconds=seconds)


async def add_items(engine: AsyncEngine, *rows: dict[str, Any]) -> None:
    """Insert into items; every row gets every column (a multi-row insert needs that)."""
    defaults = {
        "payload": "",
        "work_status": None,
        "work_error": None,
        "work_attempts": 0,
        "work_claimed_by": None,
        "work_lease_until": None,
        "updated_at": func.now(),
    }
    async with engine.begin() as conn:
        await conn.execute(insert(Item).values([{**defaults, **row} for row in rows]))


async def items(engine: AsyncEngine) -> dict[int, Any]:
    async with engine.connect() as conn:
        return {row.id: row for row in await conn.execute(select(Item.__table__))}


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, result
    assert "Traceback" not in result.err, result.err
    assert result.err.startswith("Error: ") and result.err.count("\n") == 1, result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


# --- status ----------------------------------------------------------------------------------


async def test_status_table_and_json(
    runtime: curate.Runtime, engine: AsyncEngine, cli: Curate
) -> None:
    await add_items(
        engine,
        {"id": 1, "work_status": Queued, "updated_at": ago(90)},
        {"id": 2, "work_status": Queued, "updated_at": ago(10)},
        {
            "id": 3,
            "work_status": Processing,
            "work_claimed_by": "dead",
            "work_lease_until": ago(60),
        },
        {
            "id": 4,
            "work_status": Processing,
            "work_claimed_by": "live",
            "work_lease_until": ago(-600),
        },
        {"id": 5, "work_status": Complete, "updated_at": ago(30)},
        {"id": 6, "work_status": Complete, "updated_at": ago(60)},
        {"id": 7, "work_status": Complete, "updated_at": ago(600)},
        {"id": 8, "work_status": Error, "work_error": "TimeoutError: item 8 took 30 s"},
        {"id": 9, "work_status": Error, "work_error": "TimeoutError: item 9 took 31 s\nat line 2"},
        {"id": 10, "work_status": Error, "work_error": "KeyError: 'title'", "updated_at": ago(40)},
        {"id": 11, "payload": "never queued"},
    )
    async with engine.begin() as conn:
        await conn.execute(
            insert(SeedItem), [{"status": SeedStatus.queued}, {"status": SeedStatus.complete}]
        )

    as_json, table = await asyncio.gather(cli("status", "--json"), cli("status"))

    assert as_json.code == 1, as_json
    report = json.loads(as_json.out)
    assert datetime.fromisoformat(report.pop("generated_at"))
    work, seed = report.pop("workflows")
    assert report == {"version": 1, "throughput_window_seconds": 300, "failures_found": True}
    assert 90 <= work.pop("oldest_queued_seconds") < 150
    assert datetime.fromisoformat(work["errors"][0].pop("last_seen"))
    assert datetime.fromisoformat(work["errors"][1].pop("last_seen"))
    assert work == {
        "name": "work",
        "table": "items",
        "counts": {"queued": 2, "processing": 2, "complete": 3, "error": 3, "other": 0, "unset": 1},
        "expired_leases": 1,
        "throughput_per_minute": 0.4,  # 2 rows completed within the last 5 minutes
        "errors": [
            {
                "message": "TimeoutError: item N took N s",
                "rows": 2,
                "example": "TimeoutError: item 8 took 30 s",
            },
            {"message": "KeyError: 'title'", "rows": 1, "example": "KeyError: 'title'"},
        ],
        "failures_found": True,
        **NOT_PAUSED,
    }
    assert seed == {
        "name": "seed",
        "table": "seed_items",
        "counts": {"queued": 1, "processing": 0, "complete": 1, "error": 0, "other": 0, "unset": 0},
        "oldest_queued_seconds": None,  # no updated_at column
        "expired_leases": None,  # no lease column
        "throughput_per_minute": None,
        "errors": [],
        "failures_found": False,
        **NOT_PAUSED,
    }

    assert table.code == 1, table
    lines = [line.strip() for line in table.out.splitlines()]
    assert "No  " in table.out and "status" in table.out  # row 11 was never queued
    assert any(re.fullmatch(r"work\s+2\s+2\s+3\s+3\s+1\s+1m \d+s\s+1\s+0\.4", x) for x in lines), (
        table.out
    )
    seed_row = r"seed\s+1\s+0\s+1\s+0\s+0\s+n/a\s+n/a\s+n/a"
    assert any(re.fullmatch(seed_row, x) for x in lines), table.out
    assert any(re.fullmatch(r"2\s+\d+s ago\s+TimeoutError: item N took N s", x) for x in lines)
    assert any(re.fullmatch(r"1\s+4\ds ago\s+KeyError: 'title'", x) for x in lines), table.out
    assert lines[-1] == "failures found: work: 3 rows in Error; work: 1 row past their lease"
    assert re.search(r"\(schema t_[0-9a-f]+\)", " ".join(table.out.split())), table.out
    assert "Traceback" not in table.err


async def test_status_without_failures_exits_0_and_watch_refreshes(
    runtime: curate.Runtime, engine: AsyncEngine, cli: Curate, env: dict[str, str]
) -> None:
    await add_items(engine, {"id": 1, "work_status": Complete}, {"id": 2, "work_status": Queued})

    result = await cli("status", "--workflow", "work")
    assert result.code == 0, result
    assert result.out.splitlines()[-1] == "no failures"

    watcher = await start(env, "status", "--workflow", "work", "--json", "--watch", "0.1")
    assert watcher.stdout is not None
    lines = watcher.stdout
    first = json.loads(await asyncio.wait_for(lines.readline(), 20))
    assert first["failures_found"] is False
    async with engine.begin() as conn:
        await conn.execute(update(Item).where(Item.id == 2).values(work_status=Error))

    async def shows_the_error() -> bool:
        return bool(json.loads(await asyncio.wait_for(lines.readline(), 20))["failures_found"])

    await wait_until(shows_the_error, what="a refresh showing the new error")
    watcher.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(watcher.wait(), 20) == 1  # as of the last refresh


# --- run -------------------------------------------------------------------------------------


async def test_run_once_drains_and_reports(
    runtime: curate.Runtime, engine: AsyncEngine, cli: Curate
) -> None:
    await add_items(
        engine,
        *({"id": i, "work_status": Queued} for i in range(1, 6)),
        {"id": 6, "work_status": Queued, "payload": "fail: no title"},
    )

    result = await cli("run", "--workflow", "work", "--once", "--concurrency", "3")

    assert result.code == 0, result
    assert result.out == "work: 5 complete, 1 failed, 0 retried\n"
    rows = await items(engine)
    assert [rows[i].work_status for i in range(1, 7)] == [Complete] * 5 + [Error]
    assert rows[6].work_error == "NonRetryableError: fail: no title"


async def test_run_worker_stops_on_sigterm(
    runtime: curate.Runtime, engine: AsyncEngine, env: dict[str, str]
) -> None:
    await add_items(engine, *({"id": i, "work_status": Queued} for i in range(1, 11)))
    worker = await start({**env, "CURATE_LOG_LEVEL": "INFO"}, "run", "--workflow", "work")

    async def drained() -> bool:
        return all(row.work_status == Complete for row in (await items(engine)).values())

    await wait_until(drained, what="the worker to complete every item")
    worker.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(worker.communicate(), 30)
    assert worker.returncode == 0, err
    assert "stopping: no new claims" in err.decode()


# --- requeue ---------------------------------------------------------------------------------


async def test_requeue_selectors(runtime: curate.Runtime, engine: AsyncEngine, cli: Curate) -> None:
    failed = {"work_status": Error, "work_attempts": 3}
    await add_items(
        engine,
        {"id": 1, **failed, "work_error": "ValueError: item 1 timed out"},
        {"id": 2, **failed, "work_error": "ValueError: item 2 TIMED OUT"},
        {"id": 3, **failed, "work_error": "KeyError: 'x'"},
        {"id": 4, "work_status": Processing, "work_claimed_by": "dead", "work_lease_until": ago(5)},
        {
            "id": 5,
            "work_status": Processing,
            "work_claimed_by": "live",
            "work_lease_until": ago(-600),
            "work_error": "ValueError: timed out before",
        },
        {"id": 6, "work_status": Complete, "work_attempts": 1},
        {"id": 7, "work_status": Queued, "work_error": "ValueError: timed out, retrying"},
    )

    dry = await cli("requeue", "work", "--errors", "--dry-run")
    assert (dry.code, dry.out) == (0, "would re-queue 3 rows of work in Error\n"), dry
    assert {r.work_status for i, r in (await items(engine)).items() if i <= 3} == {Error}

    matched = await cli("requeue", "work", "--errors", "--where-error", "timed out")
    assert matched.out == (
        "re-queued 2 rows of work in Error and whose error contains 'timed out'\n"
    ), matched
    rows = await items(engine)
    for i in (1, 2):
        assert (rows[i].work_status, rows[i].work_attempts, rows[i].work_error) == (Queued, 0, None)
    assert (rows[3].work_status, rows[7].work_error) == (Error, "ValueError: timed out, retrying")

    anywhere = await cli("requeue", "work", "--where-error", "timed out")  # 5 is running
    assert anywhere.out == "re-queued 1 row of work whose error contains 'timed out'\n", anywhere
    rows = await items(engine)
    assert (rows[7].work_error, rows[5].work_status) == (None, Processing)

    stuck = await cli("requeue", "work", "--stuck")
    assert stuck.out == "re-queued 1 row of work stuck in Processing\n", stuck
    rows = await items(engine)
    assert (rows[4].work_status, rows[4].work_claimed_by, rows[4].work_lease_until) == (
        Queued,
        None,
        None,
    )
    assert (rows[5].work_status, rows[5].work_claimed_by) == (Processing, "live")

    by_id = await cli("requeue", "work", "--id", "5", "--id", "6")
    assert by_id.out == "re-queued 1 row of work with id 5, 6\n", by_id  # 5 is running
    rows = await items(engine)
    assert (rows[5].work_status, rows[6].work_status) == (Processing, Queued)


async def test_requeue_asks_above_the_threshold(
    runtime: curate.Runtime, engine: AsyncEngine, cli: Curate
) -> None:
    await add_items(
        engine, *({"id": i, "work_status": Error, "work_error": "E"} for i in range(1, 102))
    )

    async def in_error() -> int:
        return sum(row.work_status == Error for row in (await items(engine)).values())

    declined = await cli("requeue", "work", "--errors", stdin="n\n")
    assert declined.code == 0 and "re-queue 101 rows of work in Error? [y/N]" in declined.out
    assert declined.out.endswith("nothing re-queued\n") and await in_error() == 101

    unanswered = await cli("requeue", "work", "--errors")  # no terminal, no input
    assert_one_line_error(unanswered, 2, "needs confirmation", "--yes")
    assert await in_error() == 101

    accepted = await cli("requeue", "work", "--errors", stdin="y\n")
    assert accepted.out.endswith("re-queued 101 rows of work in Error\n") and await in_error() == 0

    async with engine.begin() as conn:
        await conn.execute(update(Item).values(work_status=Error))
    forced = await cli("requeue", "work", "--errors", "--yes")
    assert forced.out == "re-queued 101 rows of work in Error\n" and await in_error() == 0


async def test_requeue_on_a_table_without_leases(
    runtime: curate.Runtime, engine: AsyncEngine, cli: Curate
) -> None:
    async with engine.begin() as conn:
        ids = (
            await conn.scalars(
                insert(SeedItem).returning(SeedItem.id),
                [{"status": SeedStatus.processing}, {"status": SeedStatus.processing}],
            )
        ).all()

    by_id = await cli("requeue", "seed", "--id", str(ids[0]))  # Processing: maybe running
    assert by_id.out == f"no rows of seed with id {ids[0]}; nothing re-queued\n", by_id
    bad_id = await cli("requeue", "seed", "--id", "not-a-uuid")
    assert_one_line_error(bad_id, 2, "--id 'not-a-uuid' is not a valid UUID")

    stuck = await cli("requeue", "seed", "--stuck")
    assert stuck.out == "re-queued 2 rows of seed stuck in Processing\n", stuck
    async with engine.connect() as conn:
        assert set((await conn.scalars(select(SeedItem.status))).all()) == {SeedStatus.queued}


# --- db --------------------------------------------------------------------------------------


async def test_db_upgrade_current_downgrade(schema: str, cli: Curate) -> None:
    demo_app = {"CURATE_APP": ""}  # the repository's [tool.curate] app: the demo's workflows
    where = f"(schema {schema})"

    before = await cli("db", "current")
    assert (before.code, before.out.split(where)[1]) == (0, ": base (no revision applied)\n")

    upgraded = await cli("db", "upgrade")
    assert upgraded.code == 0, upgraded
    migrated, own_tables = upgraded.out.splitlines()[-2:]
    assert migrated.endswith(f"{where}: now at 0006 (head)"), upgraded
    assert own_tables.endswith(f"{where}: curate's tables: {CURATE_TABLES} already there")
    assert "Running upgrade  -> 0001" in upgraded.err
    assert "Running upgrade 0005 -> 0006" in upgraded.err

    status = await cli("status", "--json", **demo_app)
    assert status.code == 0, status
    assert [w["name"] for w in json.loads(status.out)["workflows"]] == [
        "sitemap_discovery",
        "sitemap_import",
        "page_curation",
        "sitemap_finalise",
    ]

    downgraded = await cli("db", "downgrade", "-6")
    assert downgraded.out.endswith(f"{where}: now at base (no revision applied)\n"), downgraded

    missing = await cli("status", **demo_app)
    assert_one_line_error(missing, 2, "table domains does not exist", "curate db upgrade")
    unknown = await cli("db", "upgrade", "nope")  # after alembic.ini's own log lines:
    assert unknown.code == 2 and "Traceback" not in unknown.err, unknown
    assert unknown.err.splitlines()[-1] == "Error: Can't locate revision identified by 'nope'"


# --- bad input -------------------------------------------------------------------------------


async def test_bad_input_is_one_line_with_exit_2(
    runtime: curate.Runtime, cli: Curate, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text('[tool.curate]\npackage = "app"\n')

    results = await asyncio.gather(
        cli("status", "--workflow", "nope"),
        cli("status", "--app", "no_such_module:WORKFLOWS"),
        cli("requeue", "work"),
        cli("requeue", "work", "--id", "x"),
        cli("status", CURATE_POOL_SIZE="0"),
        cli("run", "--once", WORK_SCHEDULER_BATCH_SIZE="0"),
        cli("db", "current", cwd=project),
        cli("status", CURATE_APP="", cwd=tmp_path),
    )
    expected = [
        ("no workflow named nope; known: work, seed",),
        ("cannot load the app 'no_such_module:WORKFLOWS'",),
        ("say which rows to re-queue",),
        ("--id 'x' is not a valid int",),
        ("invalid settings: CURATE_POOL_SIZE='0' is invalid",),
        ("invalid settings: WORK_SCHEDULER_BATCH_SIZE='0' is invalid",),
        ("no Alembic set-up", "alembic.ini does not exist"),
        ("no pyproject.toml",),
    ]
    for result, fragments in zip(results, expected, strict=True):
        assert_one_line_error(result, 2, *fragments)


async def test_unreachable_database_exits_3_without_the_password(cli: Curate) -> None:
    results = await asyncio.gather(
        cli("status", CURATE_DATABASE_URL=UNREACHABLE),
        cli("requeue", "work", "--errors", CURATE_DATABASE_URL=UNREACHABLE),
        cli("run", "--once", CURATE_DATABASE_URL=UNREACHABLE),
        cli("db", "current", CURATE_DATABASE_URL=UNREACHABLE),
        cli("--debug", "status", CURATE_DATABASE_URL=UNREACHABLE),
    )
    for result in results[:4]:
        assert_one_line_error(
            result,
            3,
            "cannot reach the database at postgresql+asyncpg://postgres:***@127.0.0.1:9/x",
        )
        assert "secret" not in result.out + result.err
    debug = results[4]
    assert debug.code == 1 and "Traceback" in debug.err  # --debug shows what happened


async def test_help_has_examples_and_completion_knows_the_workflows(cli: Curate) -> None:
    helps = await asyncio.gather(
        *(cli(*command, "--help") for command in (["status"], ["run"], ["requeue"], ["db"]))
    )
    for result in helps:
        assert result.code == 0 and "Examples:\n    curate " in result.out, result

    complete = {"_CURATE_COMPLETE": "bash_complete", "COMP_CWORD": "3"}
    names, requeue_names = await asyncio.gather(
        cli(COMP_WORDS="curate status --workflow ", **complete),
        cli(COMP_WORDS="curate requeue s", **{**complete, "COMP_CWORD": "2"}),
    )
    assert names.out.split() == ["plain,work", "plain,seed"], names
    assert requeue_names.out.split() == ["plain,seed"], requeue_names
