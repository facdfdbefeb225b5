"""The statements that keep and take back claims: the heartbeat, the look-ups a claim
retry and a missed beat make, and the rescue of expired (or stale) rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Interval,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql.dml import ReturningUpdate

from curate.engine.binding import TableBinding
from curate.sql.expressions import (
    claim_order,
    one_of,
    status_inline,
    status_param,
    touch,
    trace_context_returned,
)


def _held(binding: TableBinding) -> ColumnElement[bool]:
    """The row is Processing under one of the ``curate_claims`` (id, claim token) pairs."""
    b = binding
    assert b.claimed_by is not None
    return and_(
        tuple_(b.pk, b.claimed_by).in_(bindparam("curate_claims", expanding=True)),
        b.status == status_param(b, "curate_processing"),
    )


def heartbeat(binding: TableBinding) -> ReturningUpdate[Any] | None:
    """Renews the held rows it can lock at once: a row a live transaction has locked (the
    service writing to its own row) is skipped, never waited for, so one busy row cannot
    hold up the renewal of all the others. Returns ``id`` and ``claim`` of each row renewed.
    """
    b = binding
    if b.lease_until is None or b.claimed_by is None:
        return None
    free = select(b.pk).where(_held(b)).with_for_update(skip_locked=True)
    return (
        update(b.table)
        .where(one_of(b, free), _held(b))
        .values({b.lease_until: func.now() + bindparam("curate_lease", type_=Interval())})
        .returning(b.pk.label("id"), b.claimed_by.label("claim"))
    )


def still_held(binding: TableBinding) -> Select[Any] | None:
    """Which of the ``curate_claims`` are still Processing under their claim: read without
    locking, so it tells a row the heartbeat skipped (locked) from one it lost."""
    b = binding
    if b.lease_until is None or b.claimed_by is None:
        return None
    return select(b.pk.label("id"), b.claimed_by.label("claim")).where(_held(b))


def claimed_with(binding: TableBinding) -> Select[Any] | None:
    """The rows a claim token holds (``curate_claim``): ``id``, ``attempt`` (and
    ``trace_context``, as the claim returns it), in claim order. A claim whose reply was
    lost with the connection did commit or did not; its retry looks here before claiming
    again, so it never holds two batches at once."""
    b = binding
    if b.claimed_by is None:
        return None
    attempt = b.attempts if b.attempts is not None else literal_column("1")
    return (
        select(b.pk.label("id"), attempt.label("attempt"), *trace_context_returned(b))
        .where(
            b.claimed_by == bindparam("curate_claim"),
            b.status == status_param(b, "curate_processing"),
        )
        .order_by(*claim_order(b))
    )


def rescue_expired(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    assert b.lease_until is not None
    expired = (
        select(b.pk)
        .where(
            status_inline(b, b.statuses.processing, "curate_processing_inline"),
            b.lease_until < func.now(),
        )
        .with_for_update(skip_locked=True)
    )
    attempt: ColumnElement[Any] = b.attempts if b.attempts is not None else literal_column("1")
    out_of_attempts = attempt >= bindparam("curate_max_attempts")
    values: dict[Any, Any] = {
        b.status: case(
            (out_of_attempts, status_param(b, "curate_failed")),
            else_=status_param(b, "curate_queued"),
        ),
        b.error: func.format(
            case(
                (
                    out_of_attempts,
                    "LeaseExpired: the lease expired on attempt %s of %s; no attempts left",
                ),
                else_="LeaseExpired: the lease expired on attempt %s of %s; queued again",
            ),
            attempt,
            bindparam("curate_max_attempts"),
        ),
        b.lease_until: null(),
        **touch(b),
    }
    if b.claimed_by is not None:
        values[b.claimed_by] = null()
    if b.run_after is not None:
        values[b.run_after] = null()
    return (
        update(b.table)
        .where(one_of(b, expired))
        .values(values)
        .returning(b.pk.label("id"), attempt.label("attempt"), b.status.label("status"))
    )


def rescue_stale(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    assert b.updated_at is not None
    stale = (
        select(b.pk)
        .where(
            status_inline(b, b.statuses.processing, "curate_processing_inline"),
            b.updated_at < func.now() - bindparam("curate_stale", type_=Interval()),
        )
        .with_for_update(skip_locked=True)
    )
    return (
        update(b.table)
        .where(one_of(b, stale))
        .values(
            {
                b.status: status_param(b, "curate_queued"),
                b.error: "Stale: Processing for longer than the stale age; queued again",
                **touch(b),
            }
        )
        .returning(b.pk.label("id"), literal_column("1").label("attempt"), b.status.label("status"))
    )
