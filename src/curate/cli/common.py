"""What every command shares: exit codes, error reporting, settings and the app's workflows.

Exit codes: 0 ok, 1 failures found, 2 usage or configuration error (a table not
migrated too), 3 database unreachable or refusing the connection. Expected errors print
one line, no traceback; ``curate --debug`` shows it. The database URL is only ever
printed with its password hidden.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate.db import Database
from curate.engine.error_text import format_error
from curate.logs import logger
from curate.operations import InvalidItemId, item_ids
from curate.preflight import database_problem, unmigrated
from curate.project import Project, load_workflows
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
    """The database cannot be reached, or refuses the database name, role or password: exit 3."""

    exit_code = EXIT_UNREACHABLE


def rows(n: int) -> str:
    """A count of rows in words: 1 row, 2 rows."""
    return f"{n} row" if n == 1 else f"{n} rows"


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
        problem = database_problem(error, settings.database_url)
        if problem is not None:
            raise DatabaseUnreachable(problem) from None
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
        await check_tables(db, workflows)
        yield await db.engine()
    finally:
        await db.close()


async def on_database(
    settings: curate.CurateSettings,
    workflow: Workflow,
    call: Callable[[AsyncEngine], Awaitable[T]],
) -> T:
    """``call(engine)`` on the configured database, ``workflow``'s table checked first."""
    async with database(settings, [workflow]) as engine:
        return await call(engine)


async def check_tables(db: Database, workflows: Sequence[Workflow]) -> None:
    """The workflows' tables and columns exist: a missing migration is a one-line usage
    error here rather than a SQL error later. Connecting, it proves the database answers
    (else `run` makes the error one line, exit 3)."""
    found = await unmigrated(db, workflows)
    if found:
        raise UsageProblem(str(found))
    for line in found.unindexed:
        logger.warning("{}", line)


CONFIRM_ABOVE = 100
"""More rows than this need a yes at the prompt, or --yes (requeue, cancel)."""


def described(
    workflow: Workflow, chosen: list[str], ids: Sequence[Any], where_error: str | None
) -> str:
    """A selection of rows in words, after "N rows": "of work in Error and with id 3"
    (``chosen``: the statuses chosen, in words, either matching)."""
    parts = [" or ".join(chosen)] if chosen else []
    if ids:
        parts.append(f"with id {', '.join(str(i) for i in ids)}")
    if where_error is not None:
        parts.append(f"whose error contains {where_error!r}")
    return f"of {workflow.name} " + " and ".join(parts)


item_ids_option = click.option(
    "--id", "ids", multiple=True, metavar="ID", help="This row (primary key); repeat for several."
)
"""``--id ID`` (repeatable), for the commands that choose rows."""


def typed_ids(workflow: Workflow, raw: tuple[str, ...]) -> tuple[Any, ...]:
    """The ``--id`` values as the primary key's Python type (int, UUID, str…)."""
    try:
        return item_ids(workflow, raw)
    except InvalidItemId as error:
        raise UsageProblem(f"--id {error}") from None


def confirmed(question: str) -> bool:
    """Ask; no answer possible (end of input) is a usage error, not a silent no."""
    try:
        return click.confirm(question, default=False)
    except click.Abort:
        raise UsageProblem(
            f"{question.rstrip('?')} needs confirmation: answer at a terminal or pass --yes"
        ) from None
