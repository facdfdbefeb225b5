"""Helpers that user migrations call to add a workflow to a table, and curate's own tables.

In an Alembic migration::

    from curate.migrations import add_workflow_columns, drop_workflow_columns

    def upgrade() -> None:
        add_workflow_columns("sitemap_files", "sitemap_import")

    def downgrade() -> None:
        drop_workflow_columns("sitemap_files", "sitemap_import")
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from curate.columns import (
    ColumnNames,
    ProcessingStatus,
    processing_index_name,
    queued_index_name,
    status_predicate,
    status_type,
    trace_context_column,
    workflow_columns,
)
from curate.engine.notifier import channel_for
from curate.sql import fan_in as fan_in_sql
from curate.sql import own_tables


def create_curate_tables(schema: str | None = None) -> None:
    """Create curate's own tables, ``curate_workflow_controls`` (pause, rate limits) and
    ``curate_periodic_runs`` (periodic jobs), in ``schema`` (default: the migration's).

    Once per project, in any migration: the app's role then needs no right to create
    tables. Tables already there (made by an older curate) are left as they are.
    """
    for statement in own_tables.create(schema):
        op.execute(statement)


def drop_curate_tables(schema: str | None = None) -> None:
    """Undo `create_curate_tables`: drops the tables, with every pause, rate-limit bucket
    and record of periodic runs in them."""
    for statement in own_tables.drop(schema):
        op.execute(statement)


def add_workflow_columns(
    table: str,
    prefix: str,
    *,
    status_enum: type[enum.Enum] = ProcessingStatus,
    queued: str = "Queued",
    order_by: str = "id",
    schema: str | None = None,
    notify: bool = True,
    fillfactor: int | None = None,
    trace_context: bool = False,
) -> None:
    """Create the status enum type, add the workflow's columns, its queued and processing
    indexes, and (``notify``) the trigger that wakes workers when a row is queued.

    ``queued`` names the member of ``status_enum`` the queued index selects; ``fillfactor``
    (a percentage) is passed to `set_fillfactor`; ``trace_context`` also adds the column
    `add_trace_context_column` adds.
    """
    status_type(prefix, status_enum, schema=schema).create(op.get_bind(), checkfirst=True)
    columns = workflow_columns(prefix, status_enum, schema=schema, trace_context=trace_context)
    for column in columns:
        if isinstance(column.type, sa.Enum):
            column.type.create_type = False
        op.add_column(table, column, schema=schema)
    create_queued_index(
        table, prefix, status_enum=status_enum, queued=queued, order_by=order_by, schema=schema
    )
    create_processing_index(
        table, prefix, status_enum=status_enum, order_by=order_by, schema=schema
    )
    if fillfactor is not None:
        set_fillfactor(table, fillfactor, schema=schema)
    if notify:
        create_notify_trigger(table, prefix, status_enum=status_enum, queued=queued, schema=schema)


def add_missing_workflow_columns(
    table: str,
    prefix: str,
    *,
    status_enum: type[enum.Enum] = ProcessingStatus,
    queued: str = "Queued",
    order_by: str = "id",
    schema: str | None = None,
) -> None:
    """Bring a workflow's columns up to this version of curate: add the ones the table
    lacks (``ADD COLUMN IF NOT EXISTS``), rebuild the queued index to match and create the
    processing index if it is missing.

    For tables made by an earlier curate (before ``<prefix>_priority``, say): call it in
    a new migration; on a table that has every column it only rebuilds the index.
    """
    qualified = _qualified(table, schema)
    dialect = op.get_bind().dialect
    for column in workflow_columns(prefix, status_enum, schema=schema):
        if isinstance(column.type, sa.Enum):
            continue  # the status column is what makes a table a workflow's: never missing
        type_sql = column.type.compile(dialect=dialect)
        given = column.server_default
        default = f" DEFAULT {given.arg}" if isinstance(given, sa.DefaultClause) else ""
        null = "" if column.nullable else " NOT NULL"
        op.execute(
            f'ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS "{column.name}"'
            f" {type_sql}{default}{null}"
        )
    op.execute(
        f'DROP INDEX IF EXISTS {f"{schema}." if schema else ""}"{queued_index_name(table, prefix)}"'
    )
    create_queued_index(
        table, prefix, status_enum=status_enum, queued=queued, order_by=order_by, schema=schema
    )
    create_processing_index(
        table, prefix, status_enum=status_enum, order_by=order_by, schema=schema
    )


def drop_workflow_columns(
    table: str,
    prefix: str,
    *,
    status_enum: type[enum.Enum] = ProcessingStatus,
    schema: str | None = None,
) -> None:
    """Undo `add_workflow_columns`: trigger, indexes, columns (the trace context column
    too, if there is one), then the enum type."""
    drop_notify_trigger(table, prefix, schema=schema)
    drop_trace_context_column(table, prefix, schema=schema)
    drop_queued_index(table, prefix, schema=schema)
    drop_processing_index(table, prefix, schema=schema)
    qualified = _qualified(table, schema)
    for column in reversed(workflow_columns(prefix, status_enum)):
        # IF EXISTS: a table an older curate made lacks the newer columns (snoozes, say).
        op.execute(f'ALTER TABLE {qualified} DROP COLUMN IF EXISTS "{column.name}"')
    status_type(prefix, status_enum, schema=schema).drop(op.get_bind(), checkfirst=True)


def add_trace_context_column(table: str, prefix: str, *, schema: str | None = None) -> None:
    """Add ``<prefix>_trace_context`` (nullable text): `Workflow.queue` stores the queueing
    span's W3C ``traceparent`` in it and `curate.contrib.tracing` links each item's span
    to that trace. Declare it on the model too (`curate.columns.trace_context_column`, or
    ``workflow_mixin(prefix, trace_context=True)``): curate finds columns in the model."""
    op.add_column(table, trace_context_column(prefix), schema=schema)


def drop_trace_context_column(table: str, prefix: str, *, schema: str | None = None) -> None:
    """Undo `add_trace_context_column`; nothing where there is no such column."""
    name = ColumnNames.for_prefix(prefix).trace_context
    op.execute(f'ALTER TABLE {_qualified(table, schema)} DROP COLUMN IF EXISTS "{name}"')


def create_queued_index(
    table: str,
    prefix: str,
    *,
    status_enum: type[enum.Enum] = ProcessingStatus,
    queued: str = "Queued",
    order_by: str = "id",
    schema: str | None = None,
    priority: bool = True,
) -> None:
    """A partial index over the queued rows only, in claim order (priority, then order).

    The claim reads this index, so its cost follows the number of queued rows, not the
    size of the table. ``queued`` is the name of the queued member of ``status_enum``;
    ``priority=False`` for a table without ``<prefix>_priority``.
    """
    names = ColumnNames.for_prefix(prefix)
    keys = [sa.text(f'"{names.priority}" DESC'), order_by] if priority else [order_by]
    _create_status_index(
        queued_index_name(table, prefix), table, keys, names.status, status_enum[queued], schema
    )


def drop_queued_index(table: str, prefix: str, *, schema: str | None = None) -> None:
    op.drop_index(queued_index_name(table, prefix), table_name=table, schema=schema)


def create_processing_index(
    table: str,
    prefix: str,
    *,
    status_enum: type[enum.Enum] = ProcessingStatus,
    processing: str = "Processing",
    order_by: str = "id",
    schema: str | None = None,
) -> None:
    """A partial index over the rows being processed, for the rescue of expired leases.

    Without it each rescue (every ``CURATE_RESCUE_INTERVAL_SECONDS``, in every worker)
    reads the whole table; with it, only the rows in flight. Its key is ``order_by`` (the
    primary key), never the lease, so a heartbeat, which writes only the lease, stays
    eligible for a HOT update. ``processing`` is the name of that member of ``status_enum``.
    """
    status_column = ColumnNames.for_prefix(prefix).status
    name = processing_index_name(table, prefix)
    _create_status_index(name, table, [order_by], status_column, status_enum[processing], schema)


def _create_status_index(
    name: str,
    table: str,
    keys: list[Any],
    status_column: str,
    status: enum.Enum,
    schema: str | None,
) -> None:
    """A partial index over the rows of ``status``, as `curate.columns` declares it."""
    op.create_index(
        name,
        table,
        keys,
        schema=schema,
        postgresql_where=sa.text(status_predicate(status_column, status.name)),
        if_not_exists=True,  # a table made from the models has it already (curate.columns)
    )


def drop_processing_index(table: str, prefix: str, *, schema: str | None = None) -> None:
    """Drop the processing index; a table made before curate had one has none to drop."""
    op.drop_index(
        processing_index_name(table, prefix), table_name=table, schema=schema, if_exists=True
    )


def set_fillfactor(table: str, percent: int, *, schema: str | None = None) -> None:
    """Leave ``100 - percent`` of each heap page of ``table`` free for updates.

    An update that changes no indexed column (a heartbeat; a service's write to columns no
    index covers) is HOT only when the row's page has room for the new version; it then
    writes no index entry. Status changes are never HOT: the status is in the predicate of
    curate's indexes. Applies to pages written from now on; ``VACUUM FULL`` or
    ``CLUSTER`` rewrites the existing ones. See docs/how-to/write-migrations.md.
    """
    if not 10 <= percent <= 100:
        raise ValueError(f"fillfactor must be a percentage from 10 to 100, not {percent!r}")
    op.execute(f"ALTER TABLE {_qualified(table, schema)} SET (fillfactor = {int(percent)})")


def _qualified(table: str, schema: str | None) -> str:
    return f'"{schema}"."{table}"' if schema else f'"{table}"'


def _notify_names(table: str, prefix: str, schema: str | None) -> tuple[str, str]:
    return _qualified(table, schema), f"curate_notify_{prefix}"[:63]


def create_notify_trigger(
    table: str,
    prefix: str,
    *,
    status_enum: type[enum.Enum] = ProcessingStatus,
    queued: str = "Queued",
    schema: str | None = None,
) -> None:
    """A trigger that sends ``NOTIFY curate_<prefix>`` when a row becomes queued.

    Workers listening on that channel start the row at once instead of at the next poll.
    PostgreSQL folds the identical notifications of one transaction into one.
    """
    qualified, function = _notify_names(table, prefix, schema)
    function_name = f'"{schema}"."{function}"' if schema else f'"{function}"'
    status_column = ColumnNames.for_prefix(prefix).status
    stored = status_enum[queued].name
    op.execute(
        f"CREATE OR REPLACE FUNCTION {function_name}() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN PERFORM pg_notify('{channel_for(prefix)}', ''); RETURN NULL; END $$"
    )
    op.execute(
        f'CREATE TRIGGER "{function}" AFTER INSERT OR UPDATE OF "{status_column}"'
        f" ON {qualified} FOR EACH ROW WHEN (NEW.\"{status_column}\" = '{stored}')"
        f" EXECUTE FUNCTION {function_name}()"
    )


def drop_notify_trigger(table: str, prefix: str, *, schema: str | None = None) -> None:
    qualified, function = _notify_names(table, prefix, schema)
    function_name = f'"{schema}"."{function}"' if schema else f'"{function}"'
    op.execute(f'DROP TRIGGER IF EXISTS "{function}" ON {qualified}')
    op.execute(f"DROP FUNCTION IF EXISTS {function_name}()")


def create_fan_in(
    parent_table: str,
    parent_workflow: str,
    *,
    child_table: str,
    child_workflow: str,
    parent_key: str,
    after_workflow: str | None = None,
    final: Sequence[str] = ("Complete", "Error"),
    queued: str = "Queued",
    processing: str = "Processing",
    complete: str = "Complete",
    parent_pk: str = "id",
    schema: str | None = None,
) -> None:
    """Queue a row of ``parent_table`` for ``parent_workflow`` once every row of
    ``child_table`` whose ``parent_key`` is its id has reached a status of ``final`` in
    ``child_workflow`` (and, with ``after_workflow``, once the parent's own status in that
    workflow is ``complete``): the triggers, functions and index of `curate.sql.fan_in`.

    The statuses are as the columns store them (an enum's member names). The parent's
    workflow columns must be there already (`add_workflow_columns`). Replaces an earlier
    fan-in of the same parent workflow.
    """
    names = _fan_in_names(
        parent_table,
        parent_workflow,
        child_table=child_table,
        child_workflow=child_workflow,
        parent_key=parent_key,
        after_workflow=after_workflow,
        final=final,
        statuses=(queued, processing, complete),
        parent_pk=parent_pk,
        schema=schema,
    )
    for statement in fan_in_sql.create(names):
        op.execute(statement)


def drop_fan_in(
    parent_table: str,
    parent_workflow: str,
    *,
    child_table: str,
    schema: str | None = None,
) -> None:
    """Undo `create_fan_in`."""
    parent, child = _qualified(parent_table, schema), _qualified(child_table, schema)
    for statement in fan_in_sql.drop(parent, parent_workflow, child, schema):
        op.execute(statement)


def _fan_in_names(
    parent_table: str,
    parent_workflow: str,
    *,
    child_table: str,
    child_workflow: str,
    parent_key: str,
    after_workflow: str | None,
    final: Sequence[str],
    statuses: tuple[str, str, str],
    parent_pk: str,
    schema: str | None,
) -> fan_in_sql.FanInNames:
    """The fan-in's names, with what the database says of the parent table: its columns
    and its primary key's type."""
    queued, processing, complete = statuses
    found = op.get_bind().execute(
        sa.text(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute"
            " WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped"
        ),
        {"table": _qualified(parent_table, schema)},
    )
    columns: dict[str, str] = {name: type_ for name, type_ in found}
    if parent_pk not in columns:
        raise ValueError(f"create_fan_in: table {parent_table!r} has no column {parent_pk!r}")
    if not final:
        raise ValueError("create_fan_in: final must name at least one status")
    return fan_in_sql.FanInNames(
        parent_table=_qualified(parent_table, schema),
        parent_pk=parent_pk,
        parent_pk_type=columns[parent_pk],
        parent_workflow=parent_workflow,
        parent_columns=frozenset(columns),
        child_table=_qualified(child_table, schema),
        child_status=ColumnNames.for_prefix(child_workflow).status,
        parent_key=parent_key,
        final=tuple(final),
        queued=queued,
        processing=processing,
        after_status=ColumnNames.for_prefix(after_workflow).status if after_workflow else None,
        after_complete=complete if after_workflow else None,
        schema=schema,
    )
