"""`curate db`: the project's Alembic migrations, run as ``alembic -c <alembic_ini>`` would.

Running Alembic itself (rather than on a connection of curate's) keeps any ``env.py``
working: curate's two-line one (`curate.alembic_env`) and a hand-written one alike. The
command runs in a thread because an ``env.py`` may start its own event loop. ``upgrade``
then makes sure curate's own tables exist, so a project whose migrations do not create
them (`curate.migrations.create_curate_tables`) gets them all the same.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import click
from alembic import command
from alembic.config import Config
from alembic.script.revision import RevisionError
from alembic.util import CommandError

import curate
from curate.alembic_env import configured_url
from curate.cli.common import UsageProblem, load_settings, run
from curate.cli.new_workflow import write_changes
from curate.db import Database
from curate.db.own_tables import create_own_tables
from curate.preflight import safe_url
from curate.project import Project
from curate.scaffold.alembic_setup import plan_alembic_setup
from curate.sql.own_tables import TABLES


def _config() -> Config:
    """The project's Alembic config; stdout captured so curate can frame what it prints."""
    try:
        project = Project.find()
    except curate.ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    ini = project.alembic_ini
    if not ini.is_file():
        raise UsageProblem(
            f"no Alembic set-up: {ini} does not exist; create one (curate db init) or set"
            f" alembic_ini under [tool.curate] in {project.root / 'pyproject.toml'}"
        )
    os.chdir(project.root)  # relative paths in alembic.ini mean the project's root
    if str(project.package_dir.parent) not in sys.path:  # env.py imports the models
        sys.path.insert(0, str(project.package_dir.parent))
    return Config(str(ini), stdout=io.StringIO())


def _project() -> tuple[Config, curate.CurateSettings, str]:
    """The project's Alembic config, the settings of the database it migrates, and that
    database's name."""
    settings = load_settings()
    curate.configure_logging(settings.log_level)
    config = _config()
    url = configured_url(config)
    if url:  # alembic.ini wins over CURATE_DATABASE_URL, as in curate.alembic_env
        settings = settings.model_copy(update={"database_url": url})
    where = safe_url(settings.database_url)
    if settings.database_schema:
        where += f" (schema {settings.database_schema})"
    return config, settings, where


def _steps(config: Config, *steps: Callable[[Config], None]) -> Coroutine[Any, Any, None]:
    """Run ``steps`` on ``config`` in order, in a thread."""

    def in_order() -> None:
        try:
            for step in steps:
                step(config)
        except (CommandError, RevisionError) as error:
            raise UsageProblem(str(error)) from None

    return asyncio.to_thread(in_order)


def _alembic(*steps: Callable[[Config], None]) -> tuple[Config, str]:
    """Run ``steps`` on the project's Alembic config; the config and the database's name."""
    config, settings, where = _project()
    run(_steps(config, *steps), settings)
    return config, where


async def _upgrade(config: Config, settings: curate.CurateSettings, revision: str) -> list[str]:
    """Run the migrations up to ``revision``, then create curate's tables where missing
    (in the configured schema); the names of those created."""
    await _steps(config, lambda c: command.upgrade(c, revision), command.current)
    database = Database(settings)
    try:
        async with (await database.engine()).begin() as connection:
            return await create_own_tables(connection, settings.database_schema)
    finally:
        await database.close()


def _own_tables_line(created: list[str]) -> str:
    """What `upgrade` did about curate's tables, in words."""
    there = [name for name in TABLES if name not in created]
    done = [f"created {', '.join(created)}"] if created else []
    done += [f"{', '.join(there)} already there"] if there else []
    return f"curate's tables: {'; '.join(done)}"


def _current_revision(config: Config) -> str:
    """What ``alembic current`` printed, as one line."""
    assert isinstance(config.stdout, io.StringIO)
    printed = " ".join(config.stdout.getvalue().split())
    return printed or "base (no revision applied)"


@click.group()
def db() -> None:
    """Migrate the database with the project's Alembic set-up.

    The set-up is alembic_ini under [tool.curate] in pyproject.toml (default alembic.ini
    at the project's root); curate runs it as `alembic -c <that file>` would, from the
    project's root, with the project's package importable. With curate's env.py
    (curate.alembic_env) the database is CURATE_DATABASE_URL (or the embedded PostgreSQL
    when it is unset; sqlalchemy.url in alembic.ini wins when set) and the schema
    CURATE_DATABASE_SCHEMA.

    \b
    Examples:
      curate db init
      curate db upgrade
      curate db current
      curate db downgrade -1
      CURATE_DATABASE_SCHEMA=staging curate db upgrade head
    """


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: head).

    Then it creates curate's own tables (curate_workflow_controls,
    curate_periodic_runs, curate_attempts, curate_cancellations, curate_workflow_stats)
    where they are missing, in CURATE_DATABASE_SCHEMA, and says so. Run it with a role
    that may create tables: the app's role then needs none.

    \b
    Examples:
      curate db upgrade
      curate db upgrade 0002_add_thumbnail_workflow
    """
    config, settings, where = _project()
    created = run(_upgrade(config, settings, revision), settings)
    click.echo(f"{where}: now at {_current_revision(config)}")
    click.echo(f"{where}: {_own_tables_line(created)}")


@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the database to REVISION.

    REVISION is a revision id, -1 for one step back, or base to undo every migration.

    \b
    Examples:
      curate db downgrade -1
      curate db downgrade base
    """
    config, where = _alembic(
        lambda config: command.downgrade(config, revision), lambda config: command.current(config)
    )
    click.echo(f"{where}: now at {_current_revision(config)}")


@db.command()
def current() -> None:
    """Show the database's current revision.

    \b
    Examples:
      curate db current
    """
    config, where = _alembic(command.current)
    click.echo(f"{where}: {_current_revision(config)}")


@db.command()
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
def init(dry_run: bool) -> None:
    """Write an Alembic set-up wired to curate.

    For a project with none: beside alembic_ini of [tool.curate] (default:
    alembic.ini at the project's root) it writes that file (as `alembic init`
    does, but with no database URL, since curate's settings give it, and with the
    package importable), migrations/env.py (curate.alembic_env on the metadata of
    <package>.models), migrations/script.py.mako and migrations/versions/. It
    refuses, writing nothing, where a set-up exists. curate new-workflow writes
    the same set-up when it finds none.

    \b
    Examples:
      curate db init
      curate db init --dry-run
    """
    try:
        project = Project.find()
        changes = plan_alembic_setup(project)
    except curate.ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    write_changes(
        project,
        changes,
        dry_run,
        next_step="curate new-workflow NAME --table TABLE writes a workflow and its migration"
        " (alembic revision -m MESSAGE any other one); then curate db upgrade",
    )
