"""Pieces the statements of a workflow share: status parameters, the claim's order, the
time due rows are compared with, how a statement picks rows by primary key."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Select,
    any_,
    bindparam,
    cast,
    func,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from curate.engine.binding import TableBinding


def status_param(binding: TableBinding, name: str) -> Any:
    return bindparam(name, type_=binding.status.type)


def touch(binding: TableBinding) -> dict[Any, Any]:
    return {binding.updated_at: func.now()} if binding.updated_at is not None else {}


def now_or_frozen() -> ColumnElement[Any]:
    """The time due rows are compared with: ``curate_now`` (a test's frozen clock) or now()."""
    return func.coalesce(bindparam("curate_now", type_=DateTime(timezone=True)), func.now())


def one_of(binding: TableBinding, rows: Select[Any]) -> ColumnElement[bool]:
    """``pk = ANY(CAST((SELECT array_agg(pk) FROM (<rows>)) AS <pk type>[]))``.

    Not ``pk IN (<rows>)``: for that the planner estimates the rows from the LIMIT (or,
    with a generic plan, a tenth of the table) and, past a few hundred, joins by reading
    the whole table, so a claim of 1,000 rows cost a scan of every row. The array is
    computed first (an InitPlan), and the update then finds each row by its primary key.
    """
    return pk_among(binding, rows.subquery("curate_chosen").c[binding.pk.name])


def pk_among(binding: TableBinding, ids: ColumnElement[Any]) -> ColumnElement[bool]:
    """`one_of` for ids already selected elsewhere (``ids``: a column of a subquery or CTE)."""
    aggregated = select(func.array_agg(ids)).scalar_subquery()
    return binding.pk == any_(cast(aggregated, ARRAY(binding.pk.type)))


def claim_sort_keys(binding: TableBinding) -> list[Column[Any]]:
    """Higher priority first (where the table has the column), then the workflow's order."""
    if binding.priority is None:
        return [binding.order_by]
    return [binding.priority, binding.order_by]


def claim_order(binding: TableBinding) -> list[ColumnElement[Any]]:
    return claim_order_of(binding, claim_sort_keys(binding))


def priority_nullable(binding: TableBinding) -> bool:
    return binding.priority is not None and bool(binding.priority.nullable)


def claim_order_of(
    binding: TableBinding, keys: Iterable[ColumnElement[Any]]
) -> list[ColumnElement[Any]]:
    """``keys`` (copies of `claim_sort_keys`) as an ORDER BY: the priority descending when
    there is one, then the workflow's order in its direction (`OrderSpec.ordered`).

    A NULL priority sorts as the lowest (PostgreSQL's DESC puts NULLs first). curate's
    own priority column is NOT NULL, so its index keeps the plain ``DESC``.
    """
    *priority, order = list(keys)
    if priority:
        [key] = priority
        priority = [key.desc().nulls_last() if priority_nullable(binding) else key.desc()]
    return [*priority, binding.order.ordered(order)]


def lease_cleared(binding: TableBinding) -> dict[Any, Any]:
    return {binding.lease_until: null()} if binding.lease_until is not None else {}


def trace_context_returned(binding: TableBinding) -> tuple[ColumnElement[Any], ...]:
    """``trace_context``, for a claim to return, where the table has the column; nothing
    otherwise, so the claim of any other table is unchanged."""
    column = binding.trace_context
    return () if column is None else (column.label("trace_context"),)


def status_inline(binding: TableBinding, status: enum.Enum, name: str) -> ColumnElement[bool]:
    """``status = <value>`` with the value rendered inline through the column's type, so the
    planner matches it to the partial index even for a generic plan of a prepared statement.
    """
    return binding.status == bindparam(
        name, binding.status_value(status), type_=binding.status.type, literal_execute=True
    )


def pk_in_ids(pk: Column[Any]) -> ColumnElement[bool]:
    """``pk = ANY(curate_ids)``: the ids as one array parameter. An expanding IN list takes
    a parameter per id, and the protocol allows 32,767, so a longer list would fail."""
    return pk == any_(bindparam("curate_ids", type_=ARRAY(pk.type)))
