"""Where the app's tables were looked for, for the errors that say one is missing.

A table or column "does not exist" most often because the migrations ran in another
schema than curate searches: a forgotten ``CURATE_DATABASE_SCHEMA`` (then ``curate db
upgrade`` would migrate into the wrong schema) or a wrong one. So each such error names
the schema searched and both fixes.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from curate.db.connecting import sqlstate
from curate.sql.own_tables import FIRST_SCHEMA

UNDEFINED_SQLSTATES = frozenset({"42P01", "42703", "3F000"})
"""undefined_table, undefined_column, invalid_schema_name."""


async def first_schema(connection: AsyncConnection) -> str:
    """The schema searched first: ``CURATE_DATABASE_SCHEMA`` when set, even if it does not
    exist (yet), else the search_path's first (``public``, usually)."""
    return str(await connection.scalar(FIRST_SCHEMA))


def migration_fix(schema: str) -> str:
    """What to do when a table or column is missing in ``schema``."""
    return (
        f"if the app's tables are in another schema, set CURATE_DATABASE_SCHEMA to it;"
        f" else migrate schema {schema} (curate db upgrade, with that same setting)"
    )


async def where_undefined(engine: AsyncEngine, error: BaseException) -> str:
    """For an error saying a table, column or schema is undefined: `` (schema searched: X;
    <fix>)`` to add to its message; else, or when the database cannot say, ``""``."""
    if sqlstate(error) not in UNDEFINED_SQLSTATES:
        return ""
    try:
        async with engine.connect() as connection:
            schema = await first_schema(connection)
    except Exception:  # the error said enough; its hint is not worth a second one
        return ""
    return f" (schema searched: {schema}; {migration_fix(schema)})"
