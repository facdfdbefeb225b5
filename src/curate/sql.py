"""Every statement curate runs, by name.

Statements are built once per workflow from its `TableBinding` (so SQLAlchemy's compiled
cache serves every later execution) and compare statuses through the column's own type,
so PostgreSQL enum columns and plain string columns both work and no status literal is
written into SQL. Parameters are bound by name; each statement's docstring lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Interval,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.dml import ReturningUpdate, Update

from curate.engine.binding import TableBinding


@dataclass(frozen=True)
class WorkflowStatements:
    """The named statements of one workflow.

    - ``claim``: params ``limit``, ``worker``, ``lease`` (timedelta). Marks up to ``limit``
      due queued rows Processing, counts the attempt, stamps worker and lease, clears the
      error. Returns ``id``, ``attempt`` in the workflow's order.
    - ``complete``: params ``id``, ``worker``, ``attempt``. Fenced on the claim; sets the
      complete status unless the service already moved the row out of Processing.
      Returns the row's final ``status``; no row means the claim was lost.
    - ``fail``: params ``id``, ``worker``, ``attempt``, ``to_status``, ``error``,
      ``delay_seconds`` (None for a final failure). Fenced on the claim and on Processing.
    - ``queue``: params ``ids`` (a list). Queues rows afresh (attempts 0, due now).
    """

    claim: Select[Any]
    complete: ReturningUpdate[Any]
    fail: ReturningUpdate[Any]
    queue: Update

    @classmethod
    def build(cls, binding: TableBinding) -> WorkflowStatements:
        return cls(
            claim=_claim(binding),
            complete=_complete(binding),
            fail=_fail(binding),
            queue=_queue(binding),
        )


def _status_param(binding: TableBinding, name: str) -> Any:
    return bindparam(name, type_=binding.status.type)


def _touch(binding: TableBinding) -> dict[Any, Any]:
    return {binding.updated_at: func.now()} if binding.updated_at is not None else {}


def _claim(binding: TableBinding) -> Select[Any]:
    b = binding
    queued = b.status == b.status_value(b.statuses.queued)
    due: ColumnElement[bool] = true()
    if b.run_after is not None:
        due = or_(b.run_after.is_(None), b.run_after <= func.now())
    candidates = (
        select(b.pk)
        .where(queued, due)
        .order_by(b.order_by)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    values: dict[Any, Any] = {
        b.status: _status_param(b, "processing"),
        b.error: null(),
        **_touch(b),
    }
    if b.attempts is not None:
        values[b.attempts] = b.attempts + 1
    if b.claimed_by is not None:
        values[b.claimed_by] = bindparam("worker")
    if b.lease_until is not None:
        values[b.lease_until] = func.now() + bindparam("lease", type_=Interval())
    attempt = b.attempts if b.attempts is not None else literal_column("1")
    claimed = (
        update(b.table)
        .where(b.pk.in_(candidates.scalar_subquery()))
        .values(values)
        .returning(b.pk.label("id"), attempt.label("attempt"), b.order_by.label("sort_key"))
        .cte("claimed")
    )
    return select(claimed.c.id, claimed.c.attempt).order_by(claimed.c.sort_key)


def _claim_fence(binding: TableBinding) -> ColumnElement[bool]:
    """The row is still ours: same id and, where the columns exist, same worker and attempt."""
    conditions = [binding.pk == bindparam("id")]
    if binding.claimed_by is not None:
        conditions.append(binding.claimed_by == bindparam("worker"))
    if binding.attempts is not None:
        conditions.append(binding.attempts == bindparam("attempt"))
    return and_(*conditions)


def _lease_cleared(binding: TableBinding) -> dict[Any, Any]:
    return {binding.lease_until: null()} if binding.lease_until is not None else {}


def _complete(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    still_processing = b.status == _status_param(b, "processing")
    return (
        update(b.table)
        .where(_claim_fence(b))
        .values(
            {
                b.status: case((still_processing, _status_param(b, "complete")), else_=b.status),
                b.error: case((still_processing, null()), else_=b.error),
                **_lease_cleared(b),
                **_touch(b),
            }
        )
        .returning(b.status.label("status"))
    )


def _fail(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    values: dict[Any, Any] = {
        b.status: _status_param(b, "to_status"),
        b.error: bindparam("error"),
        **_lease_cleared(b),
        **_touch(b),
    }
    if b.run_after is not None:
        values[b.run_after] = func.now() + func.make_interval(
            0, 0, 0, 0, 0, 0, bindparam("delay_seconds", type_=Float())
        )
    return (
        update(b.table)
        .where(_claim_fence(b), b.status == _status_param(b, "processing"))
        .values(values)
        .returning(b.pk)
    )


def _queue(binding: TableBinding) -> Update:
    b = binding
    values: dict[Any, Any] = {
        b.status: b.status_value(b.statuses.queued),
        b.error: null(),
        **_lease_cleared(b),
        **_touch(b),
    }
    if b.attempts is not None:
        values[b.attempts] = 0
    if b.run_after is not None:
        values[b.run_after] = null()
    return update(b.table).where(b.pk.in_(bindparam("ids", expanding=True))).values(values)
