"""The DDL of curate's own tables, for everything that creates them and looks for them.

curate keeps tables of its own next to the app's: ``curate_workflow_controls``
(`curate.sql.controls`), ``curate_periodic_runs`` (`curate.sql.periodic`),
``curate_attempts`` (`curate.sql.history`), ``curate_cancellations``
(`curate.sql.cancel`) and ``curate_workflow_stats`` (`curate.sql.stats`). They come
from a migration (`curate.migrations.create_curate_tables`, ``curate db upgrade``, the
test fixtures), never from the app's role at run time, which may not create tables. Each
statement is idempotent, so a database whose tables an older curate created is fine.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

from curate.sql import cancel, controls, history, periodic, stats

TABLES = (controls.TABLE, periodic.TABLE, history.TABLE, cancel.TABLE, stats.TABLE)
"""curate's own tables, in the order they are created."""


def _qualified(name: str, schema: str | None) -> str:
    """``name`` in ``schema`` (quoted), or as the search_path finds it."""
    if not schema:
        return name
    quoted = schema.replace('"', '""')
    return f'"{quoted}".{name}'


def create(schema: str | None = None) -> list[TextClause]:
    """The statements that create curate's tables in ``schema`` (default: the first schema
    of the search_path), those already there left as they are."""
    runs = _qualified(periodic.TABLE, schema)
    return [
        # ``tokens`` and ``refilled_at`` are a rate-limited workflow's bucket; ``last_grant``
        # is what the last TAKE granted (RETURNING sees only the new row).
        text(
            f"CREATE TABLE IF NOT EXISTS {_qualified(controls.TABLE, schema)} ("
            " workflow text PRIMARY KEY,"
            " paused boolean NOT NULL DEFAULT false,"
            " paused_at timestamptz,"
            " paused_reason text,"
            " tokens double precision NOT NULL DEFAULT 0,"
            " refilled_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
            " last_grant integer NOT NULL DEFAULT 0)"
        ),
        text(
            f"CREATE TABLE IF NOT EXISTS {runs} ("
            " job_name text NOT NULL,"
            " scheduled_at timestamptz NOT NULL,"
            " worker_id text NOT NULL,"
            " started_at timestamptz NOT NULL DEFAULT now(),"
            " lease_until timestamptz NOT NULL,"
            " attempts integer NOT NULL DEFAULT 1,"
            " finished_at timestamptz,"
            " error text,"
            " PRIMARY KEY (job_name, scheduled_at))"
        ),
        # DUE_STATE reads abandoned runs from unfinished rows only, however many finished pile up.
        text(
            "CREATE INDEX IF NOT EXISTS curate_periodic_runs_unfinished"
            f" ON {runs} (job_name, scheduled_at) WHERE finished_at IS NULL"
        ),
        *history.ddl(_qualified(history.TABLE, schema)),
        *cancel.ddl(_qualified(cancel.TABLE, schema)),
        stats.create_table(_qualified(stats.TABLE, schema)),
    ]


def drop(schema: str | None = None) -> list[TextClause]:
    """The statements that drop curate's tables (and so their rows: pauses, buckets, the
    record of periodic runs) from ``schema``."""
    return [text(f"DROP TABLE IF EXISTS {_qualified(name, schema)}") for name in reversed(TABLES)]


TABLE_EXISTS = text("SELECT to_regclass(:curate_table) IS NOT NULL")
"""Whether ``curate_table`` (a name, or ``"schema".name``) exists. Params: ``curate_table``."""


def table_exists_params(name: str, schema: str | None = None) -> dict[str, str]:
    """``name`` in ``schema``, or on the search_path as the statements that use it see it."""
    return {"curate_table": _qualified(name, schema)}


CAN_INSERT = text("SELECT has_table_privilege(to_regclass(:curate_table), 'INSERT')")
"""Whether the role may insert into ``curate_table`` (which exists). Params: ``curate_table``."""

FIRST_SCHEMA = text(
    "SELECT coalesce(nullif(btrim(split_part(current_setting('search_path'), ',', 1), ' \"'),"
    " '$user'), current_schema())"
)
"""The first schema of the search_path, as set: where the app's tables belong and an
unqualified CREATE puts one. Unlike ``current_schema()`` this names a configured schema
that does not exist (yet) rather than the next one, ``public``, where nothing should go;
``"$user"`` first is the role's schema if it exists (``current_schema()``)."""

CREATE_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('curate.own_tables'))")
"""Taken before creating the tables outside a migration: replicas that each run
``curate db upgrade`` as they start then do not race on the same CREATE."""
