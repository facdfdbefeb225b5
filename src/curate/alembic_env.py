"""Alembic's ``env.py``, written once, and running Alembic from Python.

A project's ``migrations/env.py`` is two lines::

    from curate.alembic_env import run_migrations
    from myapp.models import Base

    run_migrations(Base.metadata)

From the ``alembic`` command (or ``curate db``) the database is curate's: the
``sqlalchemy.url`` of alembic.ini when set (the placeholder ``alembic init`` writes does not
count), else ``CURATE_DATABASE_URL``, else the embedded PostgreSQL; the schema is
``CURATE_DATABASE_SCHEMA``. Logging follows alembic.ini's logging sections where it has
them; an ini without them leaves logging as it is. From Python, `migrate` runs a command
on a runtime's engine in one transaction. With a schema, the tables, their enum types and
the version table all live in it (created if need be; tests migrate an isolated schema of a
shared database).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from curate.db import Database
from curate.runtime import Runtime
from curate.settings import CurateSettings


def run_migrations(target_metadata: MetaData | None) -> None:
    """The body of ``env.py``: migrate the database Alembic was pointed at."""
    config = context.config
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) mode is not supported: migrations query the database")
    given = config.attributes.get("connection")
    if given is not None:
        _migrate(given, config.attributes.get("schema"), target_metadata)
        return
    _configure_logging(config)
    asyncio.run(_migrate_from_settings(config, target_metadata))


def configured_url(config: Config) -> str | None:
    """alembic.ini's ``sqlalchemy.url`` when it names a database; unset, empty or the
    placeholder of a stock ``alembic init`` (``driver://user:pass@localhost/dbname``), the
    database is curate's settings'."""
    url = config.get_main_option("sqlalchemy.url")
    return url if url and not url.startswith("driver://") else None


async def migrate(
    runtime: Runtime, alembic_ini: Path, alembic_command: Callable[[Config], None]
) -> None:
    """Run ``alembic_command`` (e.g. ``partial(command.upgrade, revision="head")``) on the
    runtime's database and schema, in one transaction."""
    config = Config(str(alembic_ini))
    config.attributes["schema"] = runtime.settings.database_schema

    def in_transaction(connection: Connection) -> None:
        config.attributes["connection"] = connection
        alembic_command(config)

    async with (await runtime.database.engine()).begin() as connection:
        await connection.run_sync(in_transaction)


def _configure_logging(config: Config) -> None:
    """alembic.ini's logging, as a stock env.py sets it; an ini without the sections that
    `fileConfig` needs leaves the logging alone rather than failing with a KeyError."""
    if config.config_file_name is not None and all(
        config.file_config.has_section(name) for name in ("loggers", "handlers", "formatters")
    ):
        fileConfig(config.config_file_name, disable_existing_loggers=False)


def _migrate(connection: Connection, schema: str | None, target_metadata: MetaData | None) -> None:
    """Run the migrations on ``connection``, inside the transaction already open on it."""
    if schema:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        # Only the target schema, not "schema,public": enum types of the same name in
        # public must not satisfy the migrations' existence checks.
        connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
    context.configure(
        connection=connection, target_metadata=target_metadata, version_table_schema=schema
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_from_settings(config: Config, target_metadata: MetaData | None) -> None:
    url = configured_url(config)
    settings = CurateSettings(database_url=url) if url else CurateSettings()
    database = Database(settings)
    try:
        async with (await database.engine()).begin() as connection:
            await connection.run_sync(_migrate, settings.database_schema, target_metadata)
    finally:
        await database.close()
