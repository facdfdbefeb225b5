"""Fail fast, say it once: the start-up check of `curate run`, `curate status` and the FastAPI
lifespan (curate.preflight), and how the app's runs log an error that repeats.

A database that cannot be used is exit 3 and one line; a table not migrated is exit 2 and
one line naming the column, the schema and the fix. The app logs the same line and stays
up (or, with ``require_database=True``, refuses to start), and its runs log a repeated
error once, not a statement dump per run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from asyncpg.exceptions import InvalidPasswordError, TooManyConnectionsError
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import scheduling
from curate.contrib.fastapi import curate_lifespan
from curate.db.own_tables import MissingTable, missing_table
from curate.engine.error_text import format_error
from curate.preflight import database_problem
from tests.cli_app import work
from tests.helpers import configured
from tests.test_cli import Result, start

NO_SUCH_DATABASE = "curate_no_such_database"
NO_SUCH_ROLE = "curate_no_such_role"


def fix(schema: str) -> str:
    return (
        f"in schema {schema}; if the app's tables are in another schema, set"
        f" CURATE_DATABASE_SCHEMA to it; else migrate schema {schema} (curate db upgrade,"
        " with that same setting)"
    )


async def curate_cli(env: dict[str, str], *args: str) -> Result:
    process = await start(env, *args)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def assert_says(result: Result, code: int, line: str) -> None:
    """Exit ``code``, and ``line`` alone on stderr: no traceback, nothing else."""
    assert (result.code, result.err) == (code, f"Error: {line}\n"), result


@pytest.fixture
def env(database_url: str, schema: str) -> dict[str, str]:
    """As in tests/test_cli.py: the test's database and schema, tests/cli_app.py, and
    WARNING, so that stderr holds nothing but what went wrong."""
    return {
        **os.environ,
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "CURATE_APP": "tests.cli_app:WORKFLOWS",
        "CURATE_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
async def missing_column(engine: AsyncEngine) -> None:
    """The items table as before the migration that added ``work_attempts``."""
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE items DROP COLUMN work_attempts"))


# --- the CLI ---------------------------------------------------------------------------------


async def test_cli_refuses_a_database_it_cannot_use_with_exit_3(
    database_url: str, env: dict[str, str]
) -> None:
    url = make_url(database_url).set(password="secret")
    no_database = url.set(database=NO_SUCH_DATABASE)
    no_role = url.set(username=NO_SUCH_ROLE)
    cases = [
        (
            no_database,
            f'database "{NO_SUCH_DATABASE}" does not exist;'
            " check the database name in CURATE_DATABASE_URL",
        ),
        (
            no_role,
            f'role "{NO_SUCH_ROLE}" does not exist;'
            " check the user in CURATE_DATABASE_URL and the server's pg_hba.conf",
        ),
    ]
    commands = [("status",), ("run", "--once")]
    results = await asyncio.gather(
        *(
            curate_cli({**env, "CURATE_DATABASE_URL": bad.render_as_string(False)}, *command)
            for bad, _ in cases
            for command in commands
        )
    )
    expected = [
        f"cannot connect to the database at {bad.render_as_string(True)}: {problem}"
        for bad, problem in cases
        for _ in commands
    ]
    for result, line in zip(results, expected, strict=True):
        assert_says(result, 3, line)
        assert "secret" not in result.out + result.err


async def test_cli_names_a_missing_column_and_its_schema_with_exit_2(
    missing_column: None, schema: str, env: dict[str, str]
) -> None:
    status, run = await asyncio.gather(curate_cli(env, "status"), curate_cli(env, "run", "--once"))
    line = f"workflow work: table items has no column work_attempts {fix(schema)}"
    assert_says(status, 2, line)
    assert_says(run, 2, line)


async def test_cli_names_every_unmigrated_workflow_on_one_line(
    engine: AsyncEngine, schema: str, env: dict[str, str]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("ALTER TABLE items DROP COLUMN work_attempts, DROP COLUMN work_error")
        )
        await conn.execute(text("DROP TABLE seed_items CASCADE"))

    result = await curate_cli(env, "status")

    assert_says(
        result,
        2,
        f"workflow work: table items has no columns work_error, work_attempts in schema {schema};"
        f" workflow seed: table seed_items does not exist {fix(schema)}",
    )


async def test_cli_accepts_a_migrated_database(
    runtime: curate.Runtime, env: dict[str, str]
) -> None:
    status, run = await asyncio.gather(
        curate_cli(env, "status"), curate_cli(env, "run", "--once", "--workflow", "work")
    )  # (seed has no lease columns: run warns about that, rightly)
    assert (status.code, status.err, status.out.splitlines()[-1]) == (0, "", "no failures")
    assert (run.code, run.err) == (0, ""), run


# --- the FastAPI lifespan ----------------------------------------------------------------------


@pytest.fixture
def leveled_log() -> Iterator[list[str]]:
    """Every log line (DEBUG and up) while the test runs, with its level."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)


def at(level: str, fragment: str, lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(f"{level} ") and fragment in line]


async def test_app_with_a_missing_column_starts_and_says_so_once(
    missing_column: None,
    settings: curate.CurateSettings,
    schema: str,
    engine: AsyncEngine,
    leveled_log: list[str],
) -> None:
    app = FastAPI(lifespan=curate_lifespan([work], settings=settings))
    async with app.router.lifespan_context(app):
        job = scheduling.job_for(work, curate.get_runtime())
        for _ in range(4):  # the workflow's runs, as the scheduler calls them each interval
            await job()
        failing = at("ERROR", "claim failed", leveled_log)
        repeated = at("DEBUG", "claim failed", leveled_log)

        async with engine.begin() as conn:  # the migration, run while the app is up
            await conn.execute(text("ALTER TABLE items ADD work_attempts integer DEFAULT 0"))
        await job()
        logged = list(leveled_log)  # (the shutdown's lines are not this test's)

    started = f"workflow work: table items has no column work_attempts {fix(schema)}"
    assert at("ERROR", "", logged)[0] == f"ERROR {started}\n", logged
    assert len(failing) == 1, failing  # once, however many runs fail the same way
    assert failing[0] == (
        "ERROR [work] claim failed, the next run tries again: UndefinedColumnError:"
        f" column items.work_attempts does not exist (schema searched: {schema};"
        f" {fix(schema).split('; ', 1)[1]})\n"
    )
    assert len(repeated) >= 3 and repeated[-1].endswith(" times in a row)\n"), repeated
    assert at("INFO", "claim works again after", logged), logged
    for line in logged:  # one line each, and never SQLAlchemy's statement dump
        assert line.count("\n") == 1 and "[SQL" not in line and "sqlalche.me" not in line, line


async def test_require_database_refuses_to_start_with_the_line(
    missing_column: None, settings: curate.CurateSettings, schema: str
) -> None:
    app = FastAPI(lifespan=curate_lifespan([work], settings=settings, require_database=True))
    line = f"workflow work: table items has no column work_attempts {fix(schema)}"
    with pytest.raises(curate.ConfigurationError) as refused:
        async with app.router.lifespan_context(app):
            pytest.fail("the app started")
    assert str(refused.value) == line
    assert not scheduling.scheduler.running


async def test_a_database_that_cannot_be_used_is_one_line_or_a_refusal(
    settings: curate.CurateSettings, leveled_log: list[str]
) -> None:
    assert settings.database_url is not None
    url = make_url(settings.database_url).set(database=NO_SUCH_DATABASE)
    wrong = settings.model_copy(update={"database_url": url.render_as_string(False)})
    line = (
        f"cannot connect to the database at {url.render_as_string(True)}:"
        f' database "{NO_SUCH_DATABASE}" does not exist;'
        " check the database name in CURATE_DATABASE_URL"
    )

    strict = FastAPI(lifespan=curate_lifespan([work], settings=wrong, require_database=True))
    with pytest.raises(curate.DatabaseUnavailableError) as refused:
        async with strict.router.lifespan_context(strict):
            pytest.fail("the app started")
    assert str(refused.value) == line

    app = FastAPI(lifespan=curate_lifespan([work], settings=wrong))
    async with app.router.lifespan_context(app):
        assert scheduling.scheduler.running
    assert at("ERROR", "cannot connect", leveled_log)[0] == (
        f"ERROR {line}; the workflows retry at their interval\n"
    )


@pytest.mark.parametrize("require_database", [False, True])
async def test_a_migrated_database_starts_quietly(
    runtime: curate.Runtime,
    settings: curate.CurateSettings,
    leveled_log: list[str],
    require_database: bool,
) -> None:
    app = FastAPI(
        lifespan=curate_lifespan([work], settings=settings, require_database=require_database)
    )
    async with app.router.lifespan_context(app):
        assert scheduling.get_scheduler().get_job(work.job_id) is not None
        await scheduling.job_for(work, curate.get_runtime())()
        assert at("ERROR", "", leveled_log) == []  # (before the shutdown, which is not checked)


async def test_a_run_names_the_schema_searched_even_one_that_does_not_exist(
    settings: curate.CurateSettings, schema: str
) -> None:
    """A forgotten or mistyped CURATE_DATABASE_SCHEMA: the run's error and the missing own
    table name the schema searched, not ``public`` where PostgreSQL looked next."""
    absent = f"{schema}_typo"
    async with configured(settings) as runtime:  # the legitimate schema first
        done = await work.run()
        assert done.errors == [] and await missing_table(
            await runtime.database.engine(), "no_such_table"
        ) == MissingTable("no_such_table", schema, first_look=True)

    typo = settings.model_copy(update={"database_schema": absent})
    runtime = curate.configure(typo)
    try:
        failed = await work.run()
        engine = await runtime.database.engine()
        missing = await missing_table(engine, "curate_workflow_controls")
    finally:
        await runtime.close()
    assert failed.errors == [
        'UndefinedTableError: relation "items" does not exist'
        f" (schema searched: {absent}; if the app's tables are in another schema, set"
        f" CURATE_DATABASE_SCHEMA to it; else migrate schema {absent} (curate db upgrade,"
        " with that same setting))"
    ]
    assert missing is not None and str(missing) == (
        f"curate's table curate_workflow_controls does not exist in schema {absent}"
    )
    assert missing.how_to_create.startswith(f"create curate's tables in schema {absent} ")


# --- the texts -------------------------------------------------------------------------------


async def test_a_database_error_is_the_drivers_message_alone(engine: AsyncEngine) -> None:
    with pytest.raises(DBAPIError) as raised:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT no_such_column FROM items WHERE id = :id"), {"id": 1})
    assert str(raised.value).count("\n") > 1  # SQLAlchemy's own text: statement, parameters, link
    assert format_error(raised.value) == 'ProgrammingError: column "no_such_column" does not exist'


def test_a_wrong_password_and_other_refusals_are_one_line_without_the_password() -> None:
    url = "postgresql://app:s3cret@db.example.org/app"
    where = "cannot {} the database at postgresql://app:***@db.example.org/app: "
    wrong_password = InvalidPasswordError('password authentication failed for user "app"')
    too_many = TooManyConnectionsError("sorry, too many clients already")
    refused = ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)")

    assert database_problem(DBAPIError("connect", None, wrong_password), url) == (
        where.format("connect to") + 'password authentication failed for user "app";'
        " check the password in CURATE_DATABASE_URL"
    )
    assert database_problem(DBAPIError("connect", None, too_many), url) == (
        where.format("reach") + "DBAPIError: sorry, too many clients already"
    )  # the server answered: its own words, no guess at a fix
    assert database_problem(refused, url) == (
        where.format("reach") + "ConnectionRefusedError: [Errno 111] Connect call failed"
        " ('10.0.0.5', 5432); check that the server is up and the host and port in"
        " CURATE_DATABASE_URL"
    )
    assert database_problem(ValueError("not the database's"), url) is None
