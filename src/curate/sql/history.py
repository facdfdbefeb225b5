"""The statements of ``curate_attempts``: every attempt of every item, as it ended.

A row per attempt: its workflow and item, the attempt number, when it started and ended,
the worker, the outcome and, for a failure, the error (type, message, the traceback's last
frames). It is written by the outcome's own statement (`logged` turns a fenced UPDATE into
one statement that also inserts the attempt), so the history and the row's status commit
together or not at all, and it costs no round trip. Parameters are named ``curate_*``;
each statement's docstring lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Integer,
    MetaData,
    Select,
    Text,
    TextClause,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.schema import Table

from curate.engine.binding import TableBinding
from curate.sql.expressions import status_param

TABLE = "curate_attempts"

ATTEMPTS = Table(
    TABLE,
    MetaData(),
    Column("id", BigInteger, primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("item_id", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    Column("worker", Text),
    Column("outcome", Text, nullable=False),
    Column("error", Text),
    Column("error_type", Text),
    Column("traceback", Text),
)
"""The table as the statements see it (its DDL is `curate.sql.own_tables.create`)."""

# What an attempt can end as: done; failed for good; failed and queued again; cut off by
# a shutdown (queued again); its worker stopped renewing its lease (queued again, or failed
# when no attempts were left); cancelled (running, or still waiting: then the row's attempt
# count, no start and no worker); snoozed by its service (queued again for later, the
# attempt not spent).
COMPLETED = "completed"
FAILED = "failed"
RETRIED = "retried"
INTERRUPTED = "interrupted"
LEASE_EXPIRED = "lease expired"
CANCELLED = "cancelled"
SNOOZED = "snoozed"


Written = Any
"""The columns of the rows an outcome wrote (a CTE's ``c``): ``curate_item``,
``curate_attempt_no``, ``curate_new_status``, ``curate_row_error``."""

FromWritten = Callable[[Written], ColumnElement[Any]]
"""A value of the attempt's row, from the written row's columns."""


def given(name: str, type_: Any = None) -> FromWritten:
    """The value of parameter ``name`` (the same for every row written)."""
    return lambda _: bindparam(name, type_=type_ if type_ is not None else Text())


def given_text(value: str) -> FromWritten:
    """The same text for every row written."""
    return lambda _: literal(value, Text())


def row_error(written: Written) -> ColumnElement[Any]:
    """The error the row was left with (a service that wrote its own Error, the rescue's)."""
    return cast(written.curate_row_error, Text())


def nothing(_: Written) -> ColumnElement[Any]:
    return null()


# The defaults of `logged`: what the worker passes as parameters.
_OUTCOME = given("curate_outcome")
_STARTED_AT = given("curate_started_at", DateTime(timezone=True))
_WORKER = given("curate_worker")
_ERROR = given("curate_error")
_ERROR_TYPE = given("curate_error_type")
_TRACEBACK = given("curate_traceback")


def written_attempt(written: Written) -> ColumnElement[Any]:
    """The row's attempt count as written: the attempt that just ended."""
    return cast(written.curate_attempt_no, Integer())


def given_back(written: Written) -> ColumnElement[Any]:
    """The attempt a snooze gave back: the written count is one less than the attempt."""
    return cast(written.curate_attempt_no + 1, Integer())


def logged(
    update: ReturningUpdate[Any],
    binding: TableBinding,
    *,
    outcome: FromWritten = _OUTCOME,
    started_at: FromWritten = _STARTED_AT,
    worker: FromWritten = _WORKER,
    error: FromWritten = _ERROR,
    error_type: FromWritten = _ERROR_TYPE,
    traceback: FromWritten = _TRACEBACK,
    attempt: FromWritten = written_attempt,
) -> Select[Any]:
    """``update`` (a fenced outcome write) as one statement that also records the attempt
    of each row it changed, in ``curate_attempts``; returns what ``update`` returns.

    Each value of the attempt's row comes from a parameter (the defaults: ``curate_outcome``
    …) or from the written row (`FromWritten`). Always a param: ``curate_workflow``.
    """
    b = binding
    attempt_no = b.attempts if b.attempts is not None else literal(1)
    done = update.returning(
        b.pk.label("curate_item"),
        attempt_no.label("curate_attempt_no"),
        b.status.label("curate_new_status"),
        b.error.label("curate_row_error"),
    ).cte("curate_done")
    written = done.c
    values: dict[str, Any] = {
        "workflow": bindparam("curate_workflow", type_=Text()),
        "item_id": cast(written.curate_item, Text()),
        "attempt": attempt(written),
        "started_at": started_at(written),
        "ended_at": func.clock_timestamp(),
        "worker": worker(written),
        "outcome": outcome(written),
        "error": error(written),
        "error_type": error_type(written),
        "traceback": traceback(written),
    }
    recorded = (
        insert(ATTEMPTS)
        .from_select(list(values), select(*values.values()).select_from(done))
        .cte("curate_recorded")
    )
    returned = [c for c in written if not c.key.startswith("curate_")]
    return select(*returned).add_cte(recorded)


def logged_from_outside(
    update: ReturningUpdate[Any],
    binding: TableBinding,
    *,
    outcome: FromWritten,
    error: FromWritten = row_error,
) -> Select[Any]:
    """`logged`, for an attempt ended by someone else than its worker (the rescuer, a
    cancel): no worker, no start, no exception; the error the row was left with unless
    ``error`` says otherwise."""
    return logged(
        update,
        binding,
        outcome=outcome,
        started_at=nothing,
        worker=nothing,
        error=error,
        error_type=nothing,
        traceback=nothing,
    )


def outcome_of_status(binding: TableBinding, *, if_failed: str, otherwise: str) -> FromWritten:
    """The outcome from the status the row was left in (``curate_failed_status``: the
    workflow's failed status): a completion whose service set Error itself failed; a
    rescued row out of attempts failed."""

    def outcome(written: Written) -> ColumnElement[Any]:
        failed = written.curate_new_status == status_param(binding, "curate_failed_status")
        return case((failed, literal(if_failed)), else_=literal(otherwise))

    return outcome


def started_by_position(ids: ColumnElement[Any]) -> FromWritten:
    """Of ``curate_started`` (one start time per id of ``ids``, same order), the written
    row's: the batched completion's per-item start."""

    def started(written: Written) -> ColumnElement[Any]:
        starts = bindparam("curate_started", type_=ARRAY(DateTime(timezone=True)))
        return Grouping(starts)[func.array_position(ids, written.curate_item)]

    return started


def attempt_params(
    workflow: str,
    worker: str,
    started_at: datetime | None,
    *,
    outcome: str | None = None,
    error_type: str | None = None,
    traceback: str | None = None,
) -> dict[str, Any]:
    """The parameters of `logged` that the worker knows (the error's message is the outcome
    write's own ``curate_error``)."""
    return {
        "curate_workflow": workflow,
        "curate_worker": worker,
        "curate_started_at": started_at,
        "curate_outcome": outcome,
        "curate_error_type": error_type,
        "curate_traceback": traceback,
    }


ITEM_ATTEMPTS = text(
    f"SELECT attempt, started_at, ended_at, worker, outcome, error, error_type, traceback"
    f" FROM {TABLE} WHERE workflow = :curate_workflow AND item_id = :curate_item"
    " ORDER BY id DESC LIMIT :curate_limit"
)
"""An item's attempts, newest first. Params: ``curate_workflow``, ``curate_item`` (the
primary key as text), ``curate_limit``."""


TRIM_OLD = text(
    f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE}"
    " WHERE ended_at < now() - CAST(:curate_age AS interval) ORDER BY ended_at LIMIT :curate_limit)"
)
"""Delete up to ``curate_limit`` attempts older than ``curate_age`` (an interval), oldest
first: a pass that finds more leaves them to the next."""

TRIM_PER_ITEM = text(
    f"DELETE FROM {TABLE} WHERE id IN ("
    " SELECT id FROM ("
    "  SELECT a.id, row_number() OVER (PARTITION BY a.workflow, a.item_id ORDER BY a.id DESC) AS n"
    f"  FROM {TABLE} a JOIN (SELECT DISTINCT workflow, item_id FROM {TABLE}"
    "   WHERE ended_at >= now() - CAST(:curate_since AS interval)) recent USING (workflow, item_id)"
    " ) ranked WHERE n > :curate_keep)"
)
"""Keep the newest ``curate_keep`` attempts of every item that had one within
``curate_since`` (an interval): only an item with a new attempt can have gone over."""

TRIM_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('curate.attempts.trim'))")
"""One worker trims at a time; the others skip (the lock ends with the transaction)."""


def ddl(qualified: str) -> list[TextClause]:
    """The statements creating the table (``qualified``: its name as it should be made)."""
    return [
        text(
            f"CREATE TABLE IF NOT EXISTS {qualified} ("
            " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " workflow text NOT NULL,"
            " item_id text NOT NULL,"
            " attempt integer NOT NULL,"
            " started_at timestamptz,"
            " ended_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
            " worker text,"
            " outcome text NOT NULL,"
            " error text,"
            " error_type text,"
            " traceback text)"
        ),
        # The item page and the per-item trim read an item's attempts newest first.
        text(
            f"CREATE INDEX IF NOT EXISTS curate_attempts_item ON {qualified}"
            " (workflow, item_id, id)"
        ),
        # The age trim, and the per-item trim's look for items with a recent attempt.
        text(f"CREATE INDEX IF NOT EXISTS curate_attempts_ended ON {qualified} (ended_at)"),
    ]
