"""The statements of a cancel: rows that wait end cancelled at once; a running row's
worker is asked (``curate_cancellations``, and a NOTIFY) to cancel it where it runs.

A row waits when it is Queued, or Processing under a lease that expired (its worker is
gone, nobody runs it). A running row is Processing under a live lease: only its worker
can stop the service, roll back its transaction and write the outcome, fenced on its
claim like every outcome. The request names the claim, so it can only ever stop the
attempt it was made for. Parameters are named ``curate_*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    TextClause,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.sql.dml import ReturningUpdate

from curate.engine.binding import TableBinding
from curate.sql import history
from curate.sql.expressions import lease_cleared, status_param, touch

TABLE = "curate_cancellations"

CHANNEL = "curate_cancel"
"""The NOTIFY channel of cancel requests; the payload is JSON: workflow, claim, item_id,
reason."""

_REQUESTS = sql_table(
    TABLE,
    sql_column("workflow", Text()),
    sql_column("claim", Text()),
    sql_column("item_id", Text()),
    sql_column("reason", Text()),
    sql_column("requested_at"),
)


@dataclass(frozen=True)
class CancelSelection:
    """Which rows a cancel takes: with ``errors``, rows in the failed status (moved to the
    cancelled status); otherwise rows Queued or Processing. ``ids`` and ``where_error`` (a
    case-insensitive substring of the error) narrow the choice."""

    ids: tuple[Any, ...] = ()
    errors: bool = False
    where_error: str | None = None


def _narrowed(binding: TableBinding, selection: CancelSelection) -> list[ColumnElement[bool]]:
    b = binding
    conditions: list[ColumnElement[bool]] = []
    if selection.ids:
        conditions.append(b.pk.in_(selection.ids))
    if selection.where_error is not None:
        conditions.append(b.error.icontains(selection.where_error, autoescape=True))
    return conditions


def _live_lease(binding: TableBinding) -> ColumnElement[bool]:
    """A Processing row's worker is alive (true without lease columns: nobody can tell)."""
    b = binding
    if b.lease_until is None:
        return true()
    return and_(b.lease_until.is_not(None), b.lease_until >= func.now())


def waiting_where(binding: TableBinding, selection: CancelSelection) -> ColumnElement[bool]:
    """The rows that end cancelled at once."""
    b = binding
    if selection.errors:
        status: ColumnElement[bool] = b.status == b.status_value(b.statuses.failed)
    else:
        queued = b.status == b.status_value(b.statuses.queued)
        processing = b.status == b.status_value(b.statuses.processing)
        status = queued if b.lease_until is None else or_(queued, and_(processing, ~_live_lease(b)))
    return and_(status, *_narrowed(b, selection))


def running_where(binding: TableBinding, selection: CancelSelection) -> ColumnElement[bool]:
    """The rows whose worker is asked to cancel them (none with ``errors``)."""
    b = binding
    if selection.errors or b.claimed_by is None:
        return literal(False)
    processing = b.status == b.status_value(b.statuses.processing)
    return and_(processing, _live_lease(b), b.claimed_by.is_not(None), *_narrowed(b, selection))


def cancel_waiting(
    binding: TableBinding, selection: CancelSelection, *, with_history: bool
) -> ReturningUpdate[Any] | Select[Any]:
    """Move the waiting rows to ``curate_cancelled`` (a status) with the error
    ``curate_error``; returns their ids. With the history, each gets an attempt row
    ``cancelled`` (params of `history.logged`: ``curate_workflow``; no worker)."""
    b = binding
    values = _ended_cancelled(b, bindparam("curate_error", type_=Text()))
    moved = update(b.table).where(waiting_where(b, selection)).values(values).returning(b.pk)
    if not with_history:
        return moved
    cancelled = history.given_text(history.CANCELLED)
    return history.logged_from_outside(
        moved, b, outcome=cancelled, error=history.given("curate_error")
    )


def cancel_abandoned(
    binding: TableBinding, *, with_history: bool
) -> ReturningUpdate[Any] | Select[Any] | None:
    """Rows Processing past their lease whose claim was asked to cancel: their worker went
    away before it heard. They end cancelled (``curate_cancelled``), not queued again by
    the rescue that runs next in the same transaction. Returns their ids; None without
    lease and claim columns. Params: ``curate_workflow``, ``curate_cancelled``,
    ``curate_processing``."""
    b = binding
    if b.lease_until is None or b.claimed_by is None:
        return None
    workflow = bindparam("curate_workflow", type_=Text())
    asked = (
        select(_REQUESTS.c.reason)
        .where(
            _REQUESTS.c.workflow == workflow,
            _REQUESTS.c.claim == b.claimed_by,
            _REQUESTS.c.item_id == cast(b.pk, Text()),
        )
        .limit(1)
        .scalar_subquery()
    )
    reason = func.coalesce(literal(": ") + asked, literal(""))
    values = _ended_cancelled(b, literal("Cancelled") + reason)
    moved = (
        update(b.table)
        .where(
            b.status == status_param(b, "curate_processing"),
            b.lease_until < func.now(),
            asked.is_not(None),
        )
        .values(values)
        .returning(b.pk)
    )
    if not with_history:
        return moved
    return history.logged_from_outside(moved, b, outcome=history.given_text(history.CANCELLED))


def _ended_cancelled(binding: TableBinding, error: ColumnElement[Any]) -> dict[Any, Any]:
    """A row's values as a cancel that is not its worker's ends it: the cancelled status
    (``curate_cancelled``), ``error``, and the claim cleared as the rescue clears it, so a
    worker that comes back late has its outcome refused by the fence."""
    b = binding
    values: dict[Any, Any] = {
        b.status: status_param(b, "curate_cancelled"),
        b.error: error,
        **lease_cleared(b),
        **touch(b),
    }
    for optional in (b.claimed_by, b.run_after):
        if optional is not None:
            values[optional] = null()
    return values


def request_running(binding: TableBinding, selection: CancelSelection) -> Select[Any]:
    """Record a cancel request for each running row's claim and NOTIFY `CHANNEL` of each,
    in one statement; returns the ``claim`` of each request made (a claim asked already
    is not asked again). Params: ``curate_workflow``, ``curate_reason``."""
    b = binding
    assert b.claimed_by is not None
    workflow = bindparam("curate_workflow", type_=Text())
    reason = bindparam("curate_reason", type_=Text())
    running = select(workflow, cast(b.claimed_by, Text()), cast(b.pk, Text()), reason).where(
        running_where(b, selection)
    )
    request = insert(_REQUESTS).from_select(["workflow", "claim", "item_id", "reason"], running)
    made = (
        request.on_conflict_do_update(  # asked again: asked anew (a worker may have missed it)
            index_elements=["workflow", "claim", "item_id"],
            set_={"reason": request.excluded.reason, "requested_at": func.now()},
        )
        .returning(_REQUESTS.c.claim, _REQUESTS.c.item_id, _REQUESTS.c.reason)
        .cte("curate_requested")
    )
    payload = func.json_build_object(
        "workflow",
        workflow,
        "claim",
        made.c.claim,
        "item_id",
        made.c.item_id,
        "reason",
        made.c.reason,
    )
    notified = func.pg_notify(CHANNEL, cast(payload, Text())).label("notified")
    return select(made.c.claim, notified).select_from(made)


def count(binding: TableBinding, where: ColumnElement[bool]) -> Select[Any]:
    return select(func.count()).select_from(binding.table).where(where)


REQUESTED_CLAIMS = select(_REQUESTS.c.claim, _REQUESTS.c.item_id, _REQUESTS.c.reason).where(
    _REQUESTS.c.workflow == bindparam("curate_workflow", type_=Text()),
    _REQUESTS.c.claim == any_(bindparam("curate_claims", type_=ARRAY(Text()))),
)
"""Which of ``curate_claims`` (claim tokens a worker holds) were asked to cancel: the
heartbeat's look, for a worker that missed the NOTIFY. Params: ``curate_workflow``,
``curate_claims``."""


def requested_params(workflow: str, claims: list[str]) -> dict[str, Any]:
    return {"curate_workflow": workflow, "curate_claims": claims}


TRIM = text(f"DELETE FROM {TABLE} WHERE requested_at < now() - interval '1 day'")
"""Requests a day old: their attempts ended long since (leases are minutes)."""


def ddl(qualified: str) -> list[TextClause]:
    """The statements creating the table (``qualified``: its name as it should be made)."""
    return [
        text(
            f"CREATE TABLE IF NOT EXISTS {qualified} ("
            " workflow text NOT NULL,"
            " claim text NOT NULL,"
            " item_id text NOT NULL,"
            " reason text,"
            " requested_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (workflow, claim, item_id))"
        )
    ]
