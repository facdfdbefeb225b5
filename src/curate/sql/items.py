"""The statement of the dashboard's list of a workflow's items: one page of its rows chosen
by status, id, error text or error group, newest first, built from the `TableBinding`.

Paged by offset: the page is ``LIMIT n OFFSET m``, so page 200 reads the rows of the pages
before it; operators look at the first pages and narrow with the filters, and the list
needs no index of its own. Where the table has ``updated_at`` the newest first, else by
primary key, descending.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, null, or_, select

from curate.engine.binding import TableBinding
from curate.sql.expressions import status_inline
from curate.sql.reports import error_group_message, first_line

StatusName = Literal["queued", "processing", "complete", "error", "other"]
"""The statuses a list can be filtered by: the workflow's four, and any other value."""

STATUSES: tuple[str, ...] = get_args(StatusName)


@dataclass(frozen=True)
class ItemFilter:
    """Which rows of a workflow the list shows; every given condition must hold.

    ``status``: one of `STATUSES` (None: any status, the rows never queued for the workflow
    left out); ``ids``: primary keys, converted; ``error_contains``: a case-insensitive
    substring of the stored error; ``error_group``: the `error_group_key` of an error
    group's message (the rows of that group).
    """

    status: str | None = None
    ids: tuple[Any, ...] = ()
    error_contains: str | None = None
    error_group: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")


def error_group_key(binding: TableBinding) -> ColumnElement[str]:
    """16 hex digits of the SHA-256 of the row's error group message (`group_key`): a link
    names a group without quoting its text, which may hold what the router redacts."""
    digest = func.sha256(func.convert_to(error_group_message(binding), "UTF8"))
    return func.left(func.encode(digest, "hex"), 16)


def group_key(message: str) -> str:
    """`error_group_key` of a group whose message (as the status read it) is ``message``."""
    return hashlib.sha256(message.encode()).hexdigest()[:16]


def item_page(binding: TableBinding, chosen: ItemFilter) -> Select[Any]:
    """``id``, ``status``, ``error`` (its first line; NULL without one), ``attempts`` and
    ``updated_at`` (NULL where the table lacks them) of the chosen rows, newest first.
    Params: ``curate_limit``, ``curate_offset``."""
    b = binding
    columns = [
        b.pk.label("id"),
        b.status.label("status"),
        func.nullif(first_line(b), "").label("error"),
        (null() if b.attempts is None else b.attempts).label("attempts"),
        (null() if b.updated_at is None else b.updated_at).label("updated_at"),
    ]
    order = [b.pk.desc()]
    if b.updated_at is not None:
        order.insert(0, b.updated_at.desc().nulls_last())
    return (
        select(*columns)
        .select_from(b.table)
        .where(*_conditions(b, chosen))
        .order_by(*order)
        .limit(bindparam("curate_limit"))
        .offset(bindparam("curate_offset"))
    )


def _conditions(b: TableBinding, chosen: ItemFilter) -> list[ColumnElement[bool]]:
    four = {
        "queued": b.statuses.queued,
        "processing": b.statuses.processing,
        "complete": b.statuses.complete,
        "error": b.statuses.failed,
    }
    conditions: list[ColumnElement[bool]] = []
    if chosen.status in four:
        conditions.append(status_inline(b, four[chosen.status], f"curate_{chosen.status}"))
    else:
        conditions.append(b.status.is_not(None))
        if chosen.status == "other":
            known = [status_inline(b, status, f"curate_{role}") for role, status in four.items()]
            conditions.append(~or_(*known))
    if chosen.ids:
        conditions.append(b.pk.in_(chosen.ids))
    if chosen.error_contains is not None:
        conditions.append(b.error.icontains(chosen.error_contains, autoescape=True))
    if chosen.error_group is not None:
        conditions.append(and_(b.error.is_not(None), error_group_key(b) == chosen.error_group))
    return conditions
