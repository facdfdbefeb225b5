"""The start-up check of the CLI and the FastAPI lifespan: the database takes our
connection, and every workflow's table has the columns the workflow uses.

Without it a wrong database name is SQLAlchemy's wrapped text, and an unmigrated table is
a failed claim at every run. Each problem here is one line that names what is wrong (the
URL without its password, the schema searched) and says what to do. What to do with the
lines is the caller's: the CLI exits (3 for the database, 2 for the tables), the app logs
them and keeps running, or refuses to start (`curate_lifespan(require_database=True)`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from curate.db import Database
from curate.db.connecting import sqlstate
from curate.db.schema_searched import first_schema, migration_fix
from curate.engine.backoff import is_connection_error
from curate.engine.binding import TableBinding
from curate.engine.error_text import format_error
from curate.errors import ConfigurationError, DatabaseUnavailableError
from curate.fan_in import Children
from curate.logs import logger
from curate.sql import STATUS_INDEXED, TABLE_COLUMNS, status_indexed_params, table_columns_params
from curate.sql import fan_in as fan_in_sql
from curate.workflow import Workflow

REJECTIONS = {
    "3D000": "check the database name in CURATE_DATABASE_URL",  # invalid_catalog_name
    "28000": "check the user in CURATE_DATABASE_URL and the server's pg_hba.conf",
    "28P01": "check the password in CURATE_DATABASE_URL",  # invalid_password
}
"""SQLSTATEs of a server that answers but rejects this connection for good (28000:
invalid_authorization_specification, an unknown role or no pg_hba.conf entry), with the
fix; unlike a refusal for now (too many clients, `curate.db.connecting`), waiting is no use."""

UNREACHABLE_FIX = "check that the server is up and the host and port in CURATE_DATABASE_URL"


def safe_url(url: str | None) -> str:
    """The URL with its password hidden, or a word for the embedded server."""
    if url is None:
        return "the embedded PostgreSQL"
    return make_url(url).render_as_string(hide_password=True)


def database_problem(error: BaseException, url: str | None) -> str | None:
    """The one line saying why the database at ``url`` cannot be used, when ``error`` says
    so (unreachable, or refusing this database name, role or password); else None."""
    where = safe_url(url)
    if isinstance(error, DatabaseUnavailableError):  # the embedded server: it says why
        return f"cannot reach the database at {where}: {format_error(error)}"
    code = sqlstate(error)
    if is_connection_error(error):
        fix = "" if code else f"; {UNREACHABLE_FIX}"  # a server that answered said why
        return f"cannot reach the database at {where}: {format_error(error)}{fix}"
    if code not in REJECTIONS:
        return None
    said = getattr(error, "orig", None) or error  # the driver's message, not SQLAlchemy's
    return f"cannot connect to the database at {where}: {said}; {REJECTIONS[code]}"


@dataclass(frozen=True)
class Unmigrated:
    """The workflows whose table or columns are missing, and the one fix for them all."""

    problems: tuple[str, ...]
    """One per workflow: ``workflow work: table items has no column … in schema app``."""
    fix: str
    unindexed: tuple[str, ...] = ()
    """Warnings, one per index missing from a table that has every column: the queued
    index the claim reads, the processing index the rescue reads; and one per fan-in
    whose triggers are missing (its items would never be queued)."""

    def __bool__(self) -> bool:
        return bool(self.problems)

    def lines(self) -> list[str]:
        """One line per workflow, each with the fix: for a log."""
        return [f"{problem}; {self.fix}" for problem in self.problems]

    def __str__(self) -> str:
        """Every problem and the fix once, on one line: for a command's error."""
        return "; ".join((*self.problems, self.fix))


async def unmigrated(database: Database, workflows: Sequence[Workflow]) -> Unmigrated:
    """Which ``workflows`` lack their table or columns in the schema searched
    (``CURATE_DATABASE_SCHEMA``, else the search_path's first). Connects, so it raises what
    connecting raises (see `database_problem`)."""
    problems = []
    unindexed: list[str] = []
    async with (await database.engine()).connect() as connection:
        searched = await first_schema(connection)
        for workflow in workflows:
            table = workflow.binding.table
            where = f"in schema {table.schema or searched}"
            present = set(await connection.scalars(TABLE_COLUMNS, table_columns_params(table)))
            absent = [name for name in _column_names(workflow.binding) if name not in present]
            if not present:
                problem = f"table {table.name} does not exist {where}"
            elif absent:
                column = "column" if len(absent) == 1 else "columns"
                problem = f"table {table.name} has no {column} {', '.join(absent)} {where}"
            else:
                unindexed += [
                    _unindexed(workflow, where, wanted)
                    for wanted in _indexes(workflow)
                    if not await connection.scalar(
                        STATUS_INDEXED,
                        status_indexed_params(table, workflow.binding.status.name, wanted.status),
                    )
                ]
                if workflow.waits_for is not None and not await _fan_in_there(
                    connection, workflow, workflow.waits_for
                ):
                    unindexed.append(_no_fan_in(workflow, workflow.waits_for, where))
                continue
            problems.append(f"workflow {workflow.name}: {problem}")
    return Unmigrated(tuple(problems), migration_fix(searched), tuple(unindexed))


@dataclass(frozen=True)
class _Wanted:
    """An index a workflow's table should have: over the rows of ``status``, made by the
    migration helper ``create_<helper>_index``, missed ``why``."""

    status: enum.Enum
    helper: str
    why: str


def _indexes(workflow: Workflow) -> list[_Wanted]:
    """The indexes a workflow's table should have: the processing one only where there are
    leases to rescue."""
    binding = workflow.binding
    why = "so each claim reads more of the table as it grows"
    wanted = [_Wanted(binding.statuses.queued, "queued", why)]
    if binding.lease_until is not None:
        why = "so each rescue of expired leases reads the whole table"
        wanted.append(_Wanted(binding.statuses.processing, "processing", why))
    return wanted


async def _fan_in_there(connection: AsyncConnection, parent: Workflow, children: Children) -> bool:
    """Whether the fan-in's trigger is on the children's table (its parent key checked)."""
    children.check(parent)
    trigger = fan_in_sql.object_name(parent.name, "child_queue")
    params = {**table_columns_params(children.workflow.binding.table), "curate_trigger": trigger}
    return bool(await connection.scalar(fan_in_sql.TRIGGER_EXISTS, params))


def _no_fan_in(parent: Workflow, children: Children, where: str) -> str:
    child = children.workflow
    after = f", after_workflow={children.after.name!r}" if children.after is not None else ""
    return (
        f"workflow {parent.name}: waits for {child.name} but table"
        f" {child.binding.table.name} {where} has no fan-in trigger, so its items are never"
        " queued; add it in a migration (curate.migrations.create_fan_in("
        f"{parent.binding.table.name!r}, {parent.name!r},"
        f" child_table={child.binding.table.name!r}, child_workflow={child.name!r},"
        f" parent_key={children.parent_key!r}{after}))"
    )


def _unindexed(workflow: Workflow, where: str, wanted: _Wanted) -> str:
    binding, status = workflow.binding, wanted.status
    return (
        f"workflow {workflow.name}: table {binding.table.name} {where} has no index on its"
        f" {status.name} rows (a partial index WHERE {binding.status.name} = {status.name!r}),"
        f" {wanted.why}; add it in a migration (curate.migrations.create_{wanted.helper}_index("
        f"{binding.table.name!r}, <prefix>) for a workflow's standard columns)"
    )


async def check_at_start(
    database: Database, workflows: Sequence[Workflow], *, require: bool
) -> None:
    """For a process that runs on when the database is not ready yet (the app): log each
    problem as one ERROR line, and let its workflows retry at their interval. With
    ``require``, raise instead, on one line: `DatabaseUnavailableError` when the database
    cannot be used, `ConfigurationError` naming every table not migrated."""
    try:
        found = await unmigrated(database, workflows)
    except Exception as error:
        line = database_problem(error, database.settings.database_url)
        if line is None:
            raise
        if require:
            raise DatabaseUnavailableError(line) from None
        logger.error("{}; the workflows retry at their interval", line)
        return
    if found and require:
        raise ConfigurationError(str(found))
    for line in found.lines():
        logger.error("{}", line)
    for line in found.unindexed:
        logger.warning("{}", line)


def _column_names(binding: TableBinding) -> list[str]:
    """Every column the workflow reads or writes, once each."""
    optional = (
        binding.attempts,
        binding.run_after,
        binding.claimed_by,
        binding.lease_until,
        binding.priority,
        binding.updated_at,
    )
    used = [binding.pk, binding.status, binding.error, binding.order_by, *optional]
    return list(dict.fromkeys(c.name for c in used if c is not None))
