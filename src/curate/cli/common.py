"""What every command shares: exit codes, error reporting, settings and the app's workflows.

Exit codes: 0 ok, 1 failures found, 2 usage or configuration error, 3 database
unreachable. Expected errors print one line, no traceback; ``curate --debug`` shows it.
The database URL is only ever printed with its password hidden.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem
from sqlalchemy import Column
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate.db import Database
from curate.engine.backoff import is_connection_error
from curate.engine.binding import TableBinding
from curate.engine.error_text import format_error
from curate.project import Project, load_workflows
from curate.sql import TABLE_COLUMNS, table_columns_params
from curate.workflow import Workflow

T = TypeVar("T")

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class UsageProblem(click.ClickException):
    """Bad arguments or configuration: exit 2, on one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        # Settings errors list one variable a line; a CLI error stays on one line.
        head, *rest = [line.strip() for line in message.splitlines() if line.strip()] or [""]
        super().__init__(f"{head} {'; '.join(rest)}" if rest else head)


class DatabaseUnreachable(click.ClickException):
    """The database cannot be reached: exit 3."""

    exit_code = EXIT_UNREACHABLE


def rows(n: int) -> str:
    """A count of rows in words: 1 row, 2 rows."""
    return f"{n} row" if n == 1 else f"{n} rows"


def safe_url(url: str | None) -> str:
    """The URL with its password hidden, or a word for the embedded server."""
    if url is None:
        return "the embedded PostgreSQL"
    return make_url(url).render_as_string(hide_password=True)


def load_settings() -> curate.CurateSettings:
    """`CurateSettings` from the environment; a bad value is a usage error."""
    try:
        return curate.CurateSettings()
    except curate.ConfigurationError as error:
        raise UsageProblem(str(error)) from None


def run(coroutine: Coroutine[Any, Any, T], settings: curate.CurateSettings) -> T:
    """Run a command's coroutine, turning expected errors into one-line messages."""
    debug = click.get_current_context().find_root().params.get("debug", False)
    try:
        return asyncio.run(coroutine)
    except click.ClickException:
        raise
    except curate.ConfigurationError as error:
        if debug:
            raise
        raise UsageProblem(str(error)) from None
    except Exception as error:
        if debug:
            raise
        if isinstance(error, curate.DatabaseUnavailableError) or is_connection_error(error):
            raise DatabaseUnreachable(
                f"cannot reach the database at {safe_url(settings.database_url)}:"
                f" {format_error(error)}"
            ) from None
        raise click.ClickException(format_error(error)) from None


def app_workflows(app: str | None, names: tuple[str, ...] = ()) -> list[Workflow]:
    """The project's workflows (``--app``, CURATE_APP or [tool.curate] app), maybe a subset."""
    try:
        if app is None:
            project = Project.find()
            workflows = load_workflows(project.app, project.package_dir.parent)
        else:
            workflows = load_workflows(app, Path.cwd())
    except curate.ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    if not names:
        return workflows
    known = {w.name: w for w in workflows}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageProblem(f"no workflow named {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


app_option = click.option(
    "--app",
    envvar="CURATE_APP",
    metavar="MODULE:OBJECT",
    help="The app's workflows (default: [tool.curate] app in pyproject.toml).",
)


def complete_workflow_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of workflow names from the app (nothing when it cannot load)."""
    try:
        workflows = app_workflows(ctx.params.get("app"))
    except Exception:
        return []
    return [CompletionItem(w.name) for w in workflows if w.name.startswith(incomplete)]


workflow_option = click.option(
    "--workflow",
    "names",
    multiple=True,
    metavar="NAME",
    shell_complete=complete_workflow_names,
    help="Only this workflow; repeat for several (default: all of the app's).",
)


@asynccontextmanager
async def database(
    settings: curate.CurateSettings, workflows: Sequence[Workflow] = ()
) -> AsyncIterator[AsyncEngine]:
    """An engine on the configured database, with the ``workflows``' tables checked;
    closed at the end (which releases the embedded server)."""
    db = Database(settings)
    try:
        engine = await db.engine()
        await check_tables(engine, workflows)
        yield engine
    finally:
        await db.close()


async def check_tables(engine: AsyncEngine, workflows: Sequence[Workflow]) -> None:
    """The workflows' tables and columns exist: a missing migration is a one-line usage
    error here rather than a SQL error later. Also proves the database answers."""
    problems = []
    async with engine.connect() as connection:
        for workflow in workflows:
            table = workflow.binding.table
            found = await connection.scalars(TABLE_COLUMNS, table_columns_params(table))
            present = set(found)
            if not present:
                problems.append(f"workflow {workflow.name}: table {table.name} does not exist")
                continue
            absent = [c.name for c in _columns(workflow.binding) if c.name not in present]
            if absent:
                problems.append(
                    f"workflow {workflow.name}: table {table.name} has no column"
                    f" {', '.join(absent)}"
                )
    if problems:
        raise UsageProblem("; ".join(problems) + "; apply the migrations (curate db upgrade)")


def _columns(binding: TableBinding) -> list[Column[Any]]:
    """Every column the workflow uses."""
    optional = [
        binding.attempts,
        binding.run_after,
        binding.claimed_by,
        binding.lease_until,
        binding.updated_at,
    ]
    return [binding.pk, binding.status, binding.error, *(c for c in optional if c is not None)]
