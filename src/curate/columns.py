"""The columns a workflow adds to a table, defined once for models and migrations alike.

For a workflow with prefix ``p`` curate uses ``p_status``, ``p_error``, ``p_attempts``,
``p_run_after``, ``p_claimed_by``, ``p_lease_until`` and ``p_priority``.
`workflow_columns` returns them as SQLAlchemy `Column` objects; `workflow_mixin` turns
them into a declarative mixin and `curate.migrations.add_workflow_columns` adds them in an
Alembic migration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, DateTime, Integer, String, Text
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
        )


def status_type(
    prefix: str, status_enum: type[enum.Enum] = ProcessingStatus, schema: str | None = None
) -> SAEnum:
    """The PostgreSQL enum type of a workflow's status column, named ``<prefix>_status``."""
    return SAEnum(status_enum, name=f"{prefix}_status", schema=schema)


def workflow_columns(
    prefix: str, status_enum: type[enum.Enum] = ProcessingStatus, schema: str | None = None
) -> list[Column[object]]:
    """Fresh `Column` objects for every column of the workflow ``prefix``.

    ``schema`` is where the status enum type lives (default: the search path).
    """
    return [
        Column(name, type_, nullable=nullable, server_default=default)
        for name, type_, nullable, default in _column_specs(prefix, status_enum, schema)
    ]


def _column_specs(
    prefix: str, status_enum: type[enum.Enum], schema: str | None = None
) -> list[tuple[str, TypeEngine[Any], bool, str | None]]:
    names = ColumnNames.for_prefix(prefix)
    assert names.attempts and names.run_after and names.claimed_by and names.lease_until
    assert names.priority
    return [
        (names.status, status_type(prefix, status_enum, schema), True, None),
        (names.error, Text(), True, None),
        (names.attempts, Integer(), False, "0"),
        (names.run_after, DateTime(timezone=True), True, None),
        (names.claimed_by, String(200), True, None),
        (names.lease_until, DateTime(timezone=True), True, None),
        (names.priority, Integer(), False, "0"),
    ]


def workflow_mixin(prefix: str, status_enum: type[enum.Enum] = ProcessingStatus) -> type:
    """A declarative mixin carrying the workflow's columns.

    ``class SitemapFile(workflow_mixin("sitemap_import"), Base): ...``
    """
    attributes = {
        name: mapped_column(name, type_, nullable=nullable, server_default=default)
        for name, type_, nullable, default in _column_specs(prefix, status_enum)
    }
    class_name = "".join(part.title() for part in prefix.split("_")) + "WorkflowColumns"
    return type(class_name, (), attributes)
