"""The columns a workflow adds to a table, defined once for models and migrations alike.

For a workflow with prefix ``p`` curate uses ``p_status``, ``p_error``, ``p_attempts``,
``p_run_after``, ``p_claimed_by``, ``p_lease_until`` and ``p_priority``, and, where the
table has it (``trace_context=True``), ``p_trace_context``. `workflow_columns` returns
them as SQLAlchemy `Column` objects; `workflow_mixin` turns them into a declarative mixin
and `curate.migrations.add_workflow_columns` adds them in an Alembic migration.

The claim reads a partial index over a workflow's queued rows, and the rescue of expired
leases one over its Processing rows (without it, every rescue reads the whole table). The
migration helpers create both; so that a table made any other way (``metadata.create_all``,
as tests and many apps do) has them too, and Alembic's autogenerate sees the same schema,
every table with a workflow's status and priority columns declares them
(`declare_workflow_indexes`, run by SQLAlchemy as such a table is made: the mixin,
`workflow_columns`, or the typed columns the scaffold writes). An index of the same name
declared in the model wins. Neither index has a column a heartbeat writes, so a heartbeat
can be a HOT update.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, event, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeEngine


class ProcessingStatus(enum.StrEnum):
    """The default processing status of a workflow: Queued → Processing → Complete | Error."""

    Queued = "Queued"
    Processing = "Processing"
    Complete = "Complete"
    Error = "Error"


@dataclass(frozen=True)
class ColumnNames:
    """Names of the columns one workflow uses; optional ones are None when absent."""

    status: str
    error: str
    attempts: str | None = None
    run_after: str | None = None
    claimed_by: str | None = None
    lease_until: str | None = None
    priority: str | None = None
    snoozes: str | None = None
    """Snoozes since the row was last queued (`curate.Snooze`), bounded by ``max_snoozes``."""
    trace_context: str | None = None
    """The W3C ``traceparent`` of the trace that queued the row; not among the columns
    `workflow_columns` makes: `curate.migrations.add_trace_context_column` adds it."""

    @classmethod
    def for_prefix(cls, prefix: str) -> ColumnNames:
        return cls(
            status=f"{prefix}_status",
            error=f"{prefix}_error",
            attempts=f"{prefix}_attempts",
            run_after=f"{prefix}_run_after",
            claimed_by=f"{prefix}_claimed_by",
            lease_until=f"{prefix}_lease_until",
            priority=f"{prefix}_priority",
            snoozes=f"{prefix}_snoozes",
            trace_context=f"{prefix}_trace_context",
        )


QUEUED_INDEX = "curate_queued_index"
"""Key of a status column's ``info``: True (the default) declares the queued index ordered
by the primary key and the processing index over it, a column name uses that column
instead (as ``order_by`` of `curate.migrations.add_workflow_columns`), False declares
neither."""

_DECLARED = "curate_declared"
"""Key of the ``info`` of an index curate declared itself, which a model's own gives way to."""


def queued_index_name(table: str, prefix: str) -> str:
    return f"ix_{table}_{prefix}_queued"[:63]


def processing_index_name(table: str, prefix: str) -> str:
    return f"ix_{table}_{prefix}_processing"[:63]


def status_predicate(status_column: str, stored: str) -> str:
    """The predicate of a workflow's partial index over the rows of one status, the same
    in the models and in the migration helpers (so autogenerate sees no difference)."""
    return f"{status_column} = '{stored}'"


def status_type(
    prefix: str, status_enum: type[enum.Enum] = ProcessingStatus, schema: str | None = None
) -> SAEnum:
    """The PostgreSQL enum type of a workflow's status column, named ``<prefix>_status``."""
    return SAEnum(status_enum, name=f"{prefix}_status", schema=schema)


def workflow_columns(
    prefix: str,
    status_enum: type[enum.Enum] = ProcessingStatus,
    schema: str | None = None,
    *,
    queued_index: bool | str = True,
    trace_context: bool = False,
) -> list[Column[object]]:
    """Fresh `Column` objects for every column of the workflow ``prefix``.

    ``schema`` is where the status enum type lives (default: the search path);
    ``queued_index``: see `QUEUED_INDEX`; ``trace_context`` adds ``<prefix>_trace_context``.
    """
    return _columns(_column_specs(prefix, status_enum, schema, queued_index, trace_context))


def trace_context_column(prefix: str) -> Column[object]:
    """A fresh ``<prefix>_trace_context`` column (nullable text), alone: for a table whose
    other workflow columns exist already."""
    [column] = _columns([_trace_context_spec(prefix)])
    return column


_ColumnSpec = tuple[str, TypeEngine[Any], bool, str | None, dict[str, Any]]
"""Name, type, nullable, server default and ``info`` of one column."""


def _columns(specs: list[_ColumnSpec]) -> list[Column[object]]:
    return [
        Column(name, type_, nullable=nullable, server_default=default, info=info)
        for name, type_, nullable, default, info in specs
    ]


def _trace_context_spec(prefix: str) -> _ColumnSpec:
    name = ColumnNames.for_prefix(prefix).trace_context
    assert name
    return (name, Text(), True, None, {})


def _column_specs(
    prefix: str,
    status_enum: type[enum.Enum],
    schema: str | None = None,
    queued_index: bool | str = True,
    trace_context: bool = False,
) -> list[_ColumnSpec]:
    names = ColumnNames.for_prefix(prefix)
    assert names.attempts and names.run_after and names.claimed_by and names.lease_until
    assert names.priority and names.snoozes
    status_info: dict[str, Any] = {QUEUED_INDEX: queued_index}
    traced = [_trace_context_spec(prefix)] if trace_context else []
    return [
        (names.status, status_type(prefix, status_enum, schema), True, None, status_info),
        (names.error, Text(), True, None, {}),
        (names.attempts, Integer(), False, "0", {}),
        (names.run_after, DateTime(timezone=True), True, None, {}),
        (names.claimed_by, String(200), True, None, {}),
        (names.lease_until, DateTime(timezone=True), True, None, {}),
        (names.priority, Integer(), False, "0", {}),
        (names.snoozes, Integer(), False, "0", {}),
        *traced,
    ]


def workflow_mixin(
    prefix: str,
    status_enum: type[enum.Enum] = ProcessingStatus,
    *,
    queued_index: bool | str = True,
    trace_context: bool = False,
) -> type:
    """A declarative mixin carrying the workflow's columns (and so its queued index:
    ``queued_index``, see `QUEUED_INDEX`); ``trace_context`` adds ``<prefix>_trace_context``,
    which links each item's span to the trace that queued it (`curate.contrib.tracing`).

    ``class SitemapFile(workflow_mixin("sitemap_import"), Base): ...``
    """
    attributes = {
        name: mapped_column(name, type_, nullable=nullable, server_default=default, info=info)
        for name, type_, nullable, default, info in _column_specs(
            prefix, status_enum, queued_index=queued_index, trace_context=trace_context
        )
    }
    class_name = "".join(part.title() for part in prefix.split("_")) + "WorkflowColumns"
    return type(class_name, (), attributes)


@event.listens_for(Table, "after_parent_attach")
def declare_workflow_indexes(table: Table, _metadata: object) -> None:
    """Declare the indexes of each workflow of ``table`` that lacks them: for a column
    ``<p>_status`` of the enum type ``<p>_status`` (`status_type`) with a ``Queued`` member,
    beside ``<p>_priority``, the same indexes `curate.migrations.create_queued_index` and
    `create_processing_index` make: over (priority descending, then the primary key or the
    column ``QUEUED_INDEX`` names) of the Queued rows, and over that column of the
    ``Processing`` rows when the enum has that member.
    """
    for column in list(table.columns):
        type_ = column.type
        if not (
            isinstance(type_, SAEnum)
            and type_.name == column.name
            and column.name.endswith("_status")
            and type_.enum_class is not None
            and "Queued" in type_.enum_class.__members__
        ):
            continue
        prefix = column.name.removesuffix("_status")
        priority = table.c.get(f"{prefix}_priority")
        order = _order_column(table, column.info.get(QUEUED_INDEX, True))
        if order is None or priority is None:
            continue
        members = type_.enum_class.__members__
        _declare(
            table,
            queued_index_name(table.name, prefix),
            column,
            members["Queued"].name,
            priority.desc(),
            order,
        )
        if "Processing" in members:
            _declare(
                table,
                processing_index_name(table.name, prefix),
                column,
                members["Processing"].name,
                order,
            )


def _declare(table: Table, name: str, status: Column[Any], stored: str, *keys: Any) -> None:
    """A partial index ``name`` over the rows whose ``status`` is ``stored``, unless the
    table has an index of that name already."""
    if any(index.name == name for index in table.indexes):
        return
    Index(
        name,
        *keys,
        postgresql_where=text(status_predicate(status.name, stored)),
        info={_DECLARED: True},
    )


def _order_column(table: Table, wanted: bool | str) -> Column[Any] | None:
    """The queued index's order column: the one ``wanted`` names, else (True) a one-column
    primary key; None for no index."""
    if isinstance(wanted, str):
        return table.c.get(wanted)
    keys = list(table.primary_key.columns)
    return keys[0] if wanted and len(keys) == 1 else None


@event.listens_for(Index, "after_parent_attach")
def _give_way(index: Index, table: Table) -> None:
    """A model's own index (or a copy, `Table.to_metadata`) of the name curate declared:
    the declared one goes, so there is one index of each name."""
    if index.info.get(_DECLARED):
        return
    for other in list(table.indexes):
        if other is not index and other.name == index.name and other.info.get(_DECLARED):
            table.indexes.discard(other)
