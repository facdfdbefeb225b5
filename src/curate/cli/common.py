"""What every command shares: exit codes, error reporting, settings and the app's workflows.

Exit codes: 0 ok, 1 failures found, 2 usage or configuration error, 3 database
unreachable. Expected errors print one line, no traceback; ``curate --debug`` shows it.
The database URL is only ever printed with its password hidden.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.engine import make_url

import curate
from curate.engine.backoff import is_connection_error
from curate.engine.error_text import format_error
from curate.project import Project, load_workflows
from curate.workflow import Workflow

T = TypeVar("T")

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class UsageProblem(click.ClickException):
    """Bad arguments or configuration: exit 2."""

    exit_code = EXIT_USAGE


class DatabaseUnreachable(click.ClickException):
    """The database cannot be reached: exit 3."""

    exit_code = EXIT_UNREACHABLE


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
