"""A workflow bound to its table: the real `Column` objects and status values it uses.

Resolving checks, once, that the table has the columns the workflow needs, and says
which optional features (retries, leases, fencing by worker) the table supports.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Column, ColumnElement, Table
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import visitors
from sqlalchemy.sql.sqltypes import NullType

from curate.columns import ColumnNames
from curate.engine.ordering import OrderBy, OrderSpec, order_spec
from curate.errors import ConfigurationError

LockKey = str | InstrumentedAttribute[Any] | ColumnElement[Any] | None
"""A column name, a mapped attribute, or an SQL expression over the table's columns."""

ClaimFilter = ColumnElement[bool] | None
"""A boolean SQL expression over the table's columns: only rows matching it are claimed
(``Contact.next_retry_at <= func.now()``)."""


@dataclass(frozen=True)
class Statuses:
    """The four processing statuses a workflow moves a row through, and the one a cancel
    ends it in."""

    queued: enum.Enum
    processing: enum.Enum
    complete: enum.Enum
    failed: enum.Enum
    cancelled: enum.Enum | None = None
    """None: a cancelled row ends in ``failed``, its error saying it was cancelled."""

    @property
    def cancel_ends_in(self) -> enum.Enum:
        return self.cancelled if self.cancelled is not None else self.failed

    @classmethod
    def from_enum(cls, status_enum: type[enum.Enum]) -> Statuses:
        """Use the members named Queued, Processing, Complete and Error, and Cancelled if
        there is one."""
        try:
            return cls(
                queued=status_enum["Queued"],
                processing=status_enum["Processing"],
                complete=status_enum["Complete"],
                failed=status_enum["Error"],
                cancelled=status_enum.__members__.get("Cancelled"),
            )
        except KeyError as missing:
            raise ConfigurationError(
                f"{status_enum.__name__} has no member {missing}; name the members Queued,"
                " Processing, Complete and Error, or pass statuses=Statuses(...)"
            ) from None


@dataclass(frozen=True)
class TableBinding:
    """The table, its primary key and the workflow's columns (None where absent)."""

    table: Table
    pk: Column[Any]
    status: Column[Any]
    error: Column[Any]
    attempts: Column[Any] | None
    run_after: Column[Any] | None
    claimed_by: Column[Any] | None
    lease_until: Column[Any] | None
    priority: Column[Any] | None
    snoozes: Column[Any] | None
    updated_at: Column[Any] | None
    order_by: Column[Any]
    order: OrderSpec
    """The direction and NULL placement of ``order_by`` (`curate.engine.ordering`)."""
    statuses: Statuses
    lock_key: ColumnElement[Any] | None = None
    """Rows with equal keys run one at a time, in queue order (see `Workflow`)."""
    where: ColumnElement[bool] | None = None
    """The workflow's extra claim condition: rows not matching it are not its to claim."""
    trace_context: Column[Any] | None = None
    """The ``traceparent`` of the trace that queued the row (`curate.contrib.tracing`)."""

    @property
    def can_retry(self) -> bool:
        """Retries need the attempt count and the time the next attempt is due."""
        return self.attempts is not None and self.run_after is not None

    @property
    def fences_by_claim(self) -> bool:
        """Outcome writes can check the claim (its token and attempt), not just the status."""
        return self.attempts is not None and self.claimed_by is not None

    def advisory_key(self, purpose: str) -> int:
        """A stable signed 64-bit advisory lock key for ``purpose`` on this table and
        status column: the same in every process."""
        name = f"curate.{purpose}:{self.table.fullname}:{self.status.name}"
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

    def status_value(self, status: enum.Enum) -> Any:
        """A status as the column stores it: the member for enum columns, else its value."""
        return status if isinstance(self.status.type, SAEnum) else status.value

    @classmethod
    def resolve(
        cls,
        model: Any,
        names: ColumnNames,
        statuses: Statuses,
        order_by: OrderBy = None,
        lock_key: LockKey = None,
        where: ClaimFilter = None,
    ) -> TableBinding:
        table = table_of(model)
        primary_key = list(table.primary_key.columns)
        if len(primary_key) != 1:
            raise ConfigurationError(
                f"table {table.name!r} must have a single-column primary key"
                f" (found {len(primary_key)})"
            )

        def required(name: str) -> Column[Any]:
            if name not in table.c:
                raise ConfigurationError(
                    f"table {table.name!r} has no column {name!r}; add it in a migration"
                    " (curate.migrations.add_workflow_columns adds every workflow column)"
                )
            column: Column[Any] = table.c[name]
            return column

        def optional(name: str | None) -> Column[Any] | None:
            return required(name) if name is not None and name in table.c else None

        order = order_spec(table, order_by, default=primary_key[0].key)

        return cls(
            table=table,
            pk=primary_key[0],
            status=required(names.status),
            error=required(names.error),
            attempts=optional(names.attempts),
            run_after=optional(names.run_after),
            claimed_by=optional(names.claimed_by),
            lease_until=optional(names.lease_until),
            priority=optional(names.priority),
            snoozes=optional(names.snoozes),
            updated_at=optional("updated_at"),
            order_by=table.c[order.column],
            order=order,
            statuses=statuses,
            lock_key=_lock_expression(table, lock_key) if lock_key is not None else None,
            where=_claim_filter(table, where) if where is not None else None,
            trace_context=optional(names.trace_context),
        )


def table_of(model: Any) -> Table:
    table = getattr(model, "__table__", model)
    if not isinstance(table, Table):
        raise ConfigurationError(
            f"model {model!r} is not a mapped class or a Table; pass the ORM model of the table"
        )
    return table


def _lock_expression(table: Table, lock_key: LockKey) -> ColumnElement[Any]:
    """The lock key as an expression over ``table``; a name must be one of its columns."""
    if isinstance(lock_key, str):
        if lock_key not in table.c:
            raise ConfigurationError(
                f"lock_key={lock_key!r} is not a column of table {table.name!r}"
            )
        column: Column[Any] = table.c[lock_key]
        return column
    expression = getattr(lock_key, "__clause_element__", lambda: lock_key)()
    if not isinstance(expression, ColumnElement):
        raise ConfigurationError(
            f"lock_key={lock_key!r} is neither a column name nor an SQL expression"
        )
    used = [e for e in visitors.iterate(expression) if isinstance(e, Column)]
    foreign = {c.table.name for c in used if c.table is not table}
    if foreign:
        raise ConfigurationError(
            f"lock_key={lock_key!r} uses columns of {sorted(foreign)};"
            f" it may only use columns of {table.name!r}"
        )
    return expression


def _claim_filter(table: Table, where: Any) -> ColumnElement[bool]:
    """``where`` as a boolean expression over ``table``; anything else is refused.

    It may hold sub-selects of other tables (``Model.site_id.in_(select(…))``), but it
    must not add a table to the claim's FROM.
    """
    if not isinstance(where, ColumnElement) or not isinstance(where.type, Boolean | NullType):
        raise ConfigurationError(
            f"where={where!r} is not a boolean SQL expression; pass a condition on the"
            f" columns of {table.name!r}, e.g. Model.next_retry_at <= func.now()"
        )
    foreign = {getattr(f, "name", str(f)) for f in where._from_objects if f is not table}
    if foreign:
        raise ConfigurationError(
            f"where={where!s} uses columns of {sorted(foreign)}; it may only use columns"
            f" of {table.name!r} (other tables through a sub-select)"
        )
    return where
