"""Alembic environment of the demo's tables: async (asyncpg), schema-aware.

Two ways in:

- programmatic (`curate.demo.schema`): the caller passes an open connection in
  ``config.attributes["connection"]`` and owns its transaction, logging and settings
  (``config.attributes["schema"]``);
- the ``alembic`` command: the URL is ``sqlalchemy.url`` when set, else curate's settings
  (`CurateSettings`: ``CURATE_DATABASE_URL``, or the embedded PostgreSQL when it is unset),
  and the schema is ``CURATE_DATABASE_SCHEMA``.

With a schema, the tables, their enum types and the version table all live in it, so
tests migrate an isolated schema of a shared database.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from curate import CurateSettings
from curate.db import Database
from curate.demo.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations(connection: Connection, schema: str | None) -> None:
    """Run the migrations on ``connection``, inside the transaction already open on it."""
    if schema:
        # Only the target schema, not "schema,public": enum types of the same name in
        # public must not satisfy the migrations' existence checks.
        connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
    context.configure(
        connection=connection, target_metadata=target_metadata, version_table_schema=schema
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_command_line() -> None:
    url = config.get_main_option("sqlalchemy.url")
    settings = CurateSettings(database_url=url) if url else CurateSettings()
    database = Database(settings)
    try:
        async with (await database.engine()).begin() as connection:
            await connection.run_sync(run_migrations, settings.database_schema)
    finally:
        await database.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: the migrations query the database")

given = config.attributes.get("connection")
if given is not None:
    run_migrations(given, config.attributes.get("schema"))
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    asyncio.run(run_from_command_line())
