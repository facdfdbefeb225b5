"""curate's own tables (periodic runs, workflow controls), created on first use.

Apps keep their domain tables in their own migrations; the few tables curate needs for
itself are created by curate when a feature first needs them, in the configured schema,
so a new replica or a fresh test database needs no extra step. Several replicas starting
at once take a transaction-level advisory lock, so only one creates a table.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from sqlalchemy import Engine, TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

_CREATE_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:curate_key))")

_ensured: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()
"""Per engine (each with its own search_path), the features whose tables it has ensured."""


async def ensure_tables(engine: AsyncEngine, key: str, ddl: Sequence[TextClause]) -> None:
    """Run ``ddl`` (``CREATE … IF NOT EXISTS`` statements) under an advisory lock, once
    per engine: later calls cost nothing, so callers on a hot path may call it each time.

    ``key`` names the feature (it picks the lock); the statements must be idempotent.
    """
    done = _ensured.setdefault(engine.sync_engine, set())
    if key in done:
        return
    async with engine.begin() as connection:
        await connection.execute(_CREATE_LOCK, {"curate_key": f"curate.own_tables.{key}"})
        for statement in ddl:
            await connection.execute(statement)
    done.add(key)
