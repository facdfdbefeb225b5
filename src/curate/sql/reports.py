"""The statements that read a workflow's state for people, and the requeue they choose rows
for: ``curate status``, the router, the dashboard, ``curate requeue``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Interval,
    Select,
    and_,
    bindparam,
    func,
    null,
    or_,
    select,
    true,
)

from curate.engine.binding import TableBinding
from curate.sql.expressions import (
    status_param,
)


@dataclass(frozen=True)
class RequeueSelection:
    """Which rows `WorkflowStatements.requeue` puts back to Queued.

    ``errors`` and ``stuck`` choose statuses (either matches): rows in the failed status;
    rows Processing without a live lease (every Processing row on a table without lease
    columns). ``ids`` and ``where_error`` (a case-insensitive substring of the error)
    narrow the choice. With no status chosen, every status but a running row matches:
    Processing under a live lease, or any Processing row on a table without leases.
    """

    errors: bool = False
    stuck: bool = False
    ids: tuple[Any, ...] = ()
    where_error: str | None = None


def requeue_where(binding: TableBinding, selection: RequeueSelection) -> ColumnElement[bool]:
    b = binding
    processing = b.status == b.status_value(b.statuses.processing)
    no_live_lease: ColumnElement[bool] = true()
    if b.lease_until is not None:
        no_live_lease = or_(b.lease_until.is_(None), b.lease_until < func.now())
    chosen = []
    if selection.errors:
        chosen.append(b.status == b.status_value(b.statuses.failed))
    if selection.stuck:
        chosen.append(and_(processing, no_live_lease))
    if chosen:
        conditions = [or_(*chosen)]
    else:
        running = processing if b.lease_until is None else and_(processing, ~no_live_lease)
        conditions = [or_(b.status.is_(None), ~running)]
    if selection.ids:
        conditions.append(b.pk.in_(selection.ids))
    if selection.where_error is not None:
        conditions.append(b.error.icontains(selection.where_error, autoescape=True))
    return and_(*conditions)


def status_summary(binding: TableBinding) -> Select[Any]:
    b = binding
    roles = {
        role: b.status == status_param(b, f"curate_{role}")
        for role in ("queued", "processing", "complete", "failed")
    }
    known = or_(*roles.values())
    oldest_queued: ColumnElement[Any] = null()
    completed_recently: ColumnElement[Any] = null()
    expired_leases: ColumnElement[Any] = null()
    if b.updated_at is not None:
        oldest_queued = func.date_part(
            "epoch", func.now() - func.min(b.updated_at).filter(roles["queued"])
        )
        completed_recently = func.count().filter(
            roles["complete"],
            b.updated_at >= func.now() - bindparam("curate_window", type_=Interval()),
        )
    if b.lease_until is not None:
        expired_leases = func.count().filter(roles["processing"], b.lease_until < func.now())
    columns: list[ColumnElement[Any]] = [
        *(func.count().filter(condition).label(role) for role, condition in roles.items()),
        func.count().filter(b.status.is_not(None), ~known).label("other"),
        func.count().filter(b.status.is_(None)).label("unset"),
        oldest_queued.label("oldest_queued_seconds"),
        expired_leases.label("expired_leases"),
        completed_recently.label("completed_recently"),
    ]
    return select(*columns).select_from(b.table)


UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def first_line(binding: TableBinding) -> ColumnElement[str]:
    """The error's first line, at most 300 characters ('' for no error)."""
    return func.left(func.split_part(func.coalesce(binding.error, ""), "\n", 1), 300)


def error_group_message(binding: TableBinding) -> ColumnElement[str]:
    """The first line with UUIDs as ``<uuid>`` and numbers as ``N``: the error's group."""
    return func.regexp_replace(
        func.regexp_replace(first_line(binding), UUID_PATTERN, "<uuid>", "gi"), "[0-9]+", "N", "g"
    )


def error_groups(binding: TableBinding) -> Select[Any]:
    """Errors differing only in ids and numbers (a URL, a line number) fall in one group:
    the group's ``message`` has them as ``<uuid>`` and ``N``; ``example`` is a real one."""
    b = binding
    message = error_group_message(b)
    rows = func.count()
    last_seen = func.max(b.updated_at) if b.updated_at is not None else null()
    return (
        select(
            message.label("message"),
            rows.label("rows"),
            last_seen.label("last_seen"),
            func.min(first_line(b)).label("example"),
        )
        .where(b.status == status_param(b, "curate_failed"))
        .group_by(message)
        .order_by(rows.desc(), message)
        .limit(bindparam("curate_limit"))
    )
