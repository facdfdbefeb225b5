"""curate's own tables as the app sees them: whether they exist, and creating them where no
migration runs (``curate db upgrade`` after the app's migrations, the test fixtures).

The app's role may read and write rows without being allowed to create tables (the
default for non-owners of ``public`` since PostgreSQL 15, and on many managed services),
so curate never creates its tables as it runs: the features that need a missing table
say so, with the command that creates it, and what can run without it runs.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from curate.db.schema_searched import first_schema
from curate.sql import own_tables as sql


@dataclass(frozen=True)
class MissingTable:
    """A table of curate's not found on an engine's search_path."""

    table: str
    schema: str
    """The schema searched first (`first_schema`): where the table belongs."""
    first_look: bool
    """This is the first look on the engine that found it missing: the time to say so."""

    def __str__(self) -> str:
        return f"curate's table {self.table} does not exist in schema {self.schema}"

    @property
    def how_to_create(self) -> str:
        return (
            f"create curate's tables in schema {self.schema} (curate db upgrade,"
            " or curate.migrations.create_curate_tables() in a migration); if the app's"
            " tables are in another schema, set CURATE_DATABASE_SCHEMA to it"
        )


_answers: weakref.WeakKeyDictionary[Engine, dict[str, MissingTable | None]] = (
    weakref.WeakKeyDictionary()
)
"""Per engine (each with its own search_path), the last answer for each table."""


async def missing_table(engine: AsyncEngine, table: str) -> MissingTable | None:
    """None when ``table`` exists on ``engine``'s search_path; else where it is missing.

    A table found is not asked about again for the engine's life, so a caller on a hot path
    may call this each time; a missing one is asked about again each time (one cheap
    statement), so tables a migration creates while the app runs are used at once.
    """
    answers = _answers.setdefault(engine.sync_engine, {})
    if table in answers and answers[table] is None:
        return None
    async with engine.connect() as connection:
        if await connection.scalar(sql.TABLE_EXISTS, sql.table_exists_params(table)):
            answers[table] = None
            return None
        schema = await first_schema(connection)
    missing = MissingTable(table, schema, first_look=table not in answers)
    answers[table] = missing
    return missing


_insertable: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()
"""Per engine, the tables of curate's its role was found allowed to insert into."""


async def can_insert(engine: AsyncEngine, table: str) -> bool:
    """Whether ``engine``'s role may insert into ``table`` (which exists). A yes is not
    asked again for the engine's life; a no is asked again each time, so a GRANT made
    while the app runs is used at once."""
    allowed = _insertable.setdefault(engine.sync_engine, set())
    if table in allowed:
        return True
    async with engine.connect() as connection:
        if not await connection.scalar(sql.CAN_INSERT, sql.table_exists_params(table)):
            return False
    allowed.add(table)
    return True


def seen_missing(engine: AsyncEngine, table: str) -> bool:
    """Whether the last `missing_table` of ``table`` on ``engine`` found it missing; asks
    nothing, so a statement that reads the table can be chosen without a round trip."""
    return _answers.get(engine.sync_engine, {}).get(table) is not None


async def create_own_tables(connection: AsyncConnection, schema: str | None = None) -> list[str]:
    """Create curate's tables in ``schema`` (default: the first of the search_path) where
    they are missing, in the connection's transaction; the names of those it created."""
    schema = schema or await first_schema(connection)
    await connection.execute(sql.CREATE_LOCK)
    created = [
        name
        for name in sql.TABLES
        if not await connection.scalar(sql.TABLE_EXISTS, sql.table_exists_params(name, schema))
    ]
    for statement in sql.create(schema):
        await connection.execute(statement)
    return created
