"""A workflow's queue order: one column of its table, ascending or descending, NULLs placed.

``order_by`` takes what SQLAlchemy's ``.order_by()`` takes for one column, as code written
for the seed convention passes it (``order_by_column=asc(Model.updated_at)``): a column
name, a mapped attribute or `Column`, ``asc(…)``/``desc(…)`` of one, and
``nulls_first(…)``/``nulls_last(…)`` around either. The claim, the per-key lock check and
the queued index all follow the same `OrderSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, and_, or_
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from curate.errors import ConfigurationError

ACCEPTED = (
    "a column name, a column attribute (Model.updated_at), asc(…) or desc(…) of one,"
    " optionally inside nulls_first(…) or nulls_last(…)"
)

_DIRECTIONS = {operators.asc_op: False, operators.desc_op: True}
_NULLS = {operators.nullsfirst_op: True, operators.nullslast_op: False}


@dataclass(frozen=True)
class OrderSpec:
    """The queue order: ``column`` (a name of the table), its direction, where NULLs go
    (None: PostgreSQL's default, last ascending and first descending). Hashable, so a
    cached seed workflow can be keyed by it."""

    column: str
    descending: bool = False
    nulls_first: bool | None = None

    @property
    def puts_nulls_first(self) -> bool:
        return self.descending if self.nulls_first is None else self.nulls_first

    def ordered(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """``column`` (this order's column, or its copy in an alias or a CTE) as an ORDER BY
        term; NULLS is spelled out only where it differs from the default, so the term
        matches an index declared with the same direction."""
        term = column.desc() if self.descending else column.asc()
        if self.nulls_first is None or self.nulls_first == self.descending:
            return term
        return term.nulls_first() if self.nulls_first else term.nulls_last()

    def before(
        self,
        order: ColumnElement[Any],
        pk: ColumnElement[Any],
        other_order: ColumnElement[Any],
        other_pk: ColumnElement[Any],
    ) -> ColumnElement[bool]:
        """(order, pk) sorts before (other_order, other_pk) under this order, ties by primary
        key. A plain comparison would give NULL (never before) once a value is NULL."""
        earlier = order > other_order if self.descending else order < other_order
        null_first = (order.is_(None), other_order.is_not(None))
        null_last = (order.is_not(None), other_order.is_(None))
        return or_(
            earlier,
            and_(*(null_first if self.puts_nulls_first else null_last)),
            and_(order.is_not_distinct_from(other_order), pk < other_pk),
        )


OrderBy = str | InstrumentedAttribute[Any] | Column[Any] | UnaryExpression[Any] | OrderSpec | None
"""A column name, a mapped attribute or `Column`, ``asc``/``desc`` of one, ``nulls_first``/
``nulls_last`` around any of those, an `OrderSpec`; None: the workflow's default."""


def order_spec(table: Table, order_by: OrderBy, default: str) -> OrderSpec:
    """``order_by`` read as an `OrderSpec` over ``table``; ``default``: the column used for
    None. Anything else is a `ConfigurationError` naming what is accepted."""
    if order_by is None:
        return OrderSpec(default)
    spec = order_by if isinstance(order_by, OrderSpec) else _parse(order_by, table)
    if spec.column not in table.c:
        raise ConfigurationError(
            f"order_by={order_by!r} is not a column of table {table.name!r}; give {ACCEPTED}"
        )
    return spec


def _parse(order_by: Any, table: Table) -> OrderSpec:
    if isinstance(order_by, str):
        return OrderSpec(order_by)
    nulls_first: bool | None = None
    descending = False
    element = getattr(order_by, "__clause_element__", lambda: order_by)()
    if isinstance(element, UnaryExpression) and element.modifier in _NULLS:
        nulls_first = _NULLS[element.modifier]
        element = element.element
    if isinstance(element, UnaryExpression) and element.modifier in _DIRECTIONS:
        descending = _DIRECTIONS[element.modifier]
        element = element.element
    if isinstance(element, Column) and getattr(element.table, "name", None) == table.name:
        return OrderSpec(element.key, descending, nulls_first)
    raise ConfigurationError(
        f"order_by={order_by!r} is not a column of table {table.name!r}; give {ACCEPTED}"
    )
