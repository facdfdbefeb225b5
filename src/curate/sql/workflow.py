"""The statements of one workflow over its table, built once from its binding.

Statements are built once per workflow from its `TableBinding` (so SQLAlchemy's compiled
cache serves every later execution) and compare statuses through the column's own type,
so PostgreSQL enum columns and plain string columns both work and no status literal is
written into SQL. Parameters are bound by name; each statement's docstring lists them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Interval,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import ReturningUpdate, Update
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.util import ClauseAdapter

from curate.engine.binding import TableBinding
from curate.sql.controls import not_paused
from curate.sql.curation import pk_in_ids


@dataclass(frozen=True)
class WorkflowStatements:
    """The named statements of one workflow.

    - ``claim``: marks up to ``limit`` due queued rows Processing, counts the attempt,
      stamps worker and lease, clears the error; nothing while the workflow is paused
      (`curate.sql.controls`); with a lock key, skips rows whose key is held (see
      `_lock_free`). Returns ``id``, ``attempt`` by priority, then the
      workflow's order.
    - ``complete``: fenced on the claim; sets the complete status unless the service
      already moved the row out of Processing. Returns the row's final ``status``; no row
      means the claim was lost.
    - ``complete_many`` (batched outcomes): marks complete every row of ``curate_ids``
      still Processing under its claim (``curate_claims``, ``curate_attempts``, same
      order), in one statement; returns the ids it updated. None without
      attempts/claimed_by.
    - ``fail``: fenced on the claim and on Processing; re-queues after a delay or sets
      the failed status for good (``delay_seconds`` None).
    - ``queue``: queues rows afresh (attempts 0 unless the row is running), due now, at
      ``curate_run_at`` or after ``curate_run_in``, with ``curate_priority`` if given.
    - ``release``: fenced on the claim and on Processing; hands a claimed item that never
      started back to Queued, uncounting its attempt.
    - ``heartbeat``: extends the leases of the run's claims (id and claim token) whose
      rows it can lock at once, in one statement; returns ``id``, ``claim`` of each.
      ``still_held`` reads which of the others are still held (locked, not lost). None
      without lease columns.
    - ``claimed_with``: the rows one claim token holds (a claim retried after its reply
      was lost). None without ``claimed_by``.
    - ``rescue``: returns rows whose lease expired to Queued (or, out of attempts, to the
      failed status), clearing the claim so the old worker's late outcome is refused;
      rows locked by a live transaction are skipped. On tables without leases but with
      ``updated_at``, rows Processing for longer than ``stale`` go back to Queued. None
      when the table has neither.
    - ``status_summary`` (for ``curate status``): one row of rows per status role
      (``queued``, ``processing``, ``complete``, ``failed``, ``other``; ``unset``: rows
      whose status is NULL, never queued for this workflow), the age of the
      oldest queued row (``oldest_queued_seconds``, from ``updated_at``), rows Processing
      past their lease (``expired_leases``) and rows completed within ``curate_window``
      (``completed_recently``, from ``updated_at``); a column the table lacks gives NULL.
    - ``error_groups``: the failed rows grouped by the first line of their error with ids
      and numbers masked, largest groups first, at most ``curate_limit``: ``message``,
      ``rows``, ``last_seen``, ``example``.
    - ``requeue`` / ``requeue_count`` (built per call from a `RequeueSelection`): put
      the selected rows back to Queued afresh, or count them.
    - ``item_state``: one row's processing state, by ``curate_id``.
    - ``queue_depth`` (for the metrics): rows Queued and the oldest one's age.

    Parameters are named ``curate_*`` (names of columns are reserved in UPDATE); the
    ``*_params`` methods build them, so callers never spell them.
    """

    claim: Select[Any]
    complete: ReturningUpdate[Any]
    complete_many: ReturningUpdate[Any] | None
    fail: ReturningUpdate[Any]
    queue: Update
    release: ReturningUpdate[Any]
    heartbeat: ReturningUpdate[Any] | None
    still_held: Select[Any] | None
    claimed_with: Select[Any] | None
    rescue: ReturningUpdate[Any] | None
    status_summary: Select[Any]
    error_groups: Select[Any]
    binding: TableBinding

    @classmethod
    def build(cls, binding: TableBinding) -> WorkflowStatements:
        return cls(
            claim=_claim(binding),
            complete=_complete(binding),
            complete_many=_complete_many(binding) if binding.fences_by_claim else None,
            fail=_fail(binding),
            queue=_queue(binding),
            release=_release(binding),
            heartbeat=_heartbeat(binding),
            still_held=_still_held(binding),
            claimed_with=_claimed_with(binding),
            rescue=_rescue_expired(binding)
            if binding.lease_until is not None
            else (_rescue_stale(binding) if binding.updated_at is not None else None),
            status_summary=_status_summary(binding),
            error_groups=_error_groups(binding),
            binding=binding,
        )

    def claim_params(
        self,
        workflow: str,
        limit: int,
        claim: str,
        lease: timedelta,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """``workflow``: the name its pause flag is kept under; ``claim``: this claim's
        token (`curate.engine.claim.new_claim_token`), stored in ``claimed_by``;
        ``now``: a frozen clock's time (tests), or None for the database's now()."""
        return {
            "curate_workflow": workflow,
            "curate_now": now,
            "curate_limit": limit,
            "curate_claim": claim,
            "curate_lease": lease,
            "curate_processing": self._status(self.binding.statuses.processing),
        }

    def complete_params(self, item_id: Any, claim: str, attempt: int) -> dict[str, Any]:
        statuses = self.binding.statuses
        return {
            **_fence_params(item_id, claim, attempt),
            "curate_processing": self._status(statuses.processing),
            "curate_complete": self._status(statuses.complete),
        }

    def complete_many_params(self, claims: Sequence[tuple[Any, str, int]]) -> dict[str, Any]:
        """``claims``: (item id, claim token, attempt) of the items to mark complete, each
        id once."""
        statuses = self.binding.statuses
        return {
            "curate_ids": [item_id for item_id, _, _ in claims],
            "curate_claims": [claim for _, claim, _ in claims],
            "curate_attempts": [attempt for _, _, attempt in claims],
            "curate_processing": self._status(statuses.processing),
            "curate_complete": self._status(statuses.complete),
        }

    def fail_params(
        self,
        item_id: Any,
        claim: str,
        attempt: int,
        *,
        to_status: enum.Enum,
        error: str,
        delay_seconds: float | None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """``now``: a frozen clock's time (tests) the retry's delay counts from."""
        return {
            **_fence_params(item_id, claim, attempt),
            "curate_processing": self._status(self.binding.statuses.processing),
            "curate_to_status": self._status(to_status),
            "curate_error": error,
            "curate_delay_seconds": delay_seconds,
            "curate_now": now,
        }

    def release_params(self, item_id: Any, claim: str, attempt: int) -> dict[str, Any]:
        statuses = self.binding.statuses
        return {
            **_fence_params(item_id, claim, attempt),
            "curate_processing": self._status(statuses.processing),
            "curate_queued": self._status(statuses.queued),
        }

    def heartbeat_params(
        self, claims: Iterable[tuple[Any, str]], lease: timedelta
    ) -> dict[str, Any]:
        """``claims``: (item id, claim token) of every item the run holds."""
        return {
            "curate_claims": list(claims),
            "curate_lease": lease,
            "curate_processing": self._status(self.binding.statuses.processing),
        }

    def still_held_params(self, claims: Iterable[tuple[Any, str]]) -> dict[str, Any]:
        """``claims``: (item id, claim token) the heartbeat could not renew."""
        return {
            "curate_claims": list(claims),
            "curate_processing": self._status(self.binding.statuses.processing),
        }

    def claimed_with_params(self, claim: str) -> dict[str, Any]:
        return {
            "curate_claim": claim,
            "curate_processing": self._status(self.binding.statuses.processing),
        }

    def rescue_params(self, max_attempts: int, stale: timedelta | None) -> dict[str, Any]:
        statuses = self.binding.statuses
        params = {
            "curate_queued": self._status(statuses.queued),
            "curate_failed": self._status(statuses.failed),
            "curate_max_attempts": max_attempts,
        }
        if self.binding.lease_until is None:
            params["curate_stale"] = stale
        return params

    @staticmethod
    def queue_params(
        ids: Sequence[Any],
        *,
        run_at: datetime | None = None,
        run_in: timedelta | None = None,
        priority: int | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Due at ``run_at``, or ``run_in`` after now (``now``: a frozen clock's time), or
        at once; ``priority`` None keeps the row's priority."""
        return {
            "curate_ids": list(ids),
            "curate_run_at": run_at,
            "curate_run_in": run_in,
            "curate_priority": priority,
            "curate_now": now,
        }

    def status_params(self, window: timedelta) -> dict[str, Any]:
        statuses = self.binding.statuses
        return {
            "curate_queued": self._status(statuses.queued),
            "curate_processing": self._status(statuses.processing),
            "curate_complete": self._status(statuses.complete),
            "curate_failed": self._status(statuses.failed),
            "curate_window": window,
        }

    def error_groups_params(self, limit: int) -> dict[str, Any]:
        return {"curate_failed": self._status(self.binding.statuses.failed), "curate_limit": limit}

    def requeue(self, selection: RequeueSelection) -> ReturningUpdate[Any]:
        """Queue the selected rows afresh: attempts 0, due now, error and claim cleared.

        The conditions are on the table itself (no sub-select), so PostgreSQL re-checks
        them on a row another transaction changed meanwhile: a row claimed in between is
        left alone. Returns the ids.
        """
        b = self.binding
        values: dict[Any, Any] = {
            b.status: b.status_value(b.statuses.queued),
            b.error: null(),
            **_lease_cleared(b),
            **_touch(b),
        }
        for column, value in ((b.attempts, 0), (b.run_after, null()), (b.claimed_by, null())):
            if column is not None:
                values[column] = value
        return update(b.table).where(_requeue_where(b, selection)).values(values).returning(b.pk)

    def requeue_count(self, selection: RequeueSelection) -> Select[Any]:
        """How many rows `requeue` would move now (``--dry-run``, the confirmation)."""
        b = self.binding
        return select(func.count()).select_from(b.table).where(_requeue_where(b, selection))

    @cached_property
    def item_state(self) -> Select[Any]:
        """One row's processing state by ``curate_id``: ``id``, ``status``, ``error``,
        ``attempts``, ``run_after``, ``claimed_by``, ``lease_until``, ``updated_at``
        (NULL for a column the table lacks); no row when there is no such id."""
        b = self.binding
        optional = {
            "attempts": b.attempts,
            "run_after": b.run_after,
            "claimed_by": b.claimed_by,
            "lease_until": b.lease_until,
            "updated_at": b.updated_at,
        }
        return select(
            b.pk.label("id"),
            b.status.label("status"),
            b.error.label("error"),
            *((null() if c is None else c).label(name) for name, c in optional.items()),
        ).where(b.pk == bindparam("curate_id", type_=b.pk.type))

    @staticmethod
    def item_state_params(item_id: Any) -> dict[str, Any]:
        return {"curate_id": item_id}

    @cached_property
    def queue_depth(self) -> Select[Any]:
        """The metrics' scrape query: ``queued`` (rows Queued, due or not) and
        ``oldest_queued_seconds`` (from ``updated_at``; NULL without it or when none is
        queued). The queued status is inline, so the partial index serves it."""
        b = self.binding
        queued = _status_inline(b, b.statuses.queued, "curate_queued")
        oldest: ColumnElement[Any] = null()
        if b.updated_at is not None:
            oldest = func.date_part("epoch", func.now() - func.min(b.updated_at))
        return select(func.count().label("queued"), oldest.label("oldest_queued_seconds")).where(
            queued
        )

    def earliest_due(self) -> Select[Any] | None:
        """When the first queued row that is not due yet becomes due (retries, delays).

        A run ends by asking, so the row starts when it is due, not at the next poll.
        None for tables without ``run_after``.
        """
        b = self.binding
        if b.run_after is None:
            return None
        return select(func.min(b.run_after) - _now()).where(
            _status_inline(b, b.statuses.queued, "curate_queued"), b.run_after > _now()
        )

    @staticmethod
    def earliest_due_params(now: datetime | None = None) -> dict[str, Any]:
        return {"curate_now": now}

    def _status(self, status: enum.Enum) -> Any:
        return self.binding.status_value(status)


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


def _fence_params(item_id: Any, claim: str, attempt: int) -> dict[str, Any]:
    return {"curate_id": item_id, "curate_claim": claim, "curate_attempt": attempt}


def _status_param(binding: TableBinding, name: str) -> Any:
    return bindparam(name, type_=binding.status.type)


def _touch(binding: TableBinding) -> dict[Any, Any]:
    return {binding.updated_at: func.now()} if binding.updated_at is not None else {}


def _now() -> ColumnElement[Any]:
    """The time due rows are compared with: ``curate_now`` (a test's frozen clock) or now()."""
    return func.coalesce(bindparam("curate_now", type_=DateTime(timezone=True)), func.now())


def _claim(binding: TableBinding) -> Select[Any]:
    b = binding
    queued = _status_inline(b, b.statuses.queued, "curate_queued")
    due: ColumnElement[bool] = true()
    if b.run_after is not None:
        due = or_(b.run_after.is_(None), b.run_after <= _now())
    candidates = (
        select(b.pk)
        .where(queued, due, _lock_free(b), not_paused())
        .order_by(*_claim_order(b))
        .limit(bindparam("curate_limit"))
        .with_for_update(skip_locked=True)
    )
    values: dict[Any, Any] = {
        b.status: _status_param(b, "curate_processing"),
        b.error: null(),
        **_touch(b),
    }
    if b.attempts is not None:
        values[b.attempts] = b.attempts + 1
    if b.claimed_by is not None:
        values[b.claimed_by] = bindparam("curate_claim")
    if b.lease_until is not None:
        values[b.lease_until] = func.now() + bindparam("curate_lease", type_=Interval())
    attempt = b.attempts if b.attempts is not None else literal_column("1")
    sort_keys = [key.label(f"sort_key_{n}") for n, key in enumerate(_claim_sort_keys(b))]
    claimed = (
        update(b.table)
        .where(_one_of(b, candidates))
        .values(values)
        .returning(b.pk.label("id"), attempt.label("attempt"), *sort_keys)
        .cte("claimed")
    )
    return select(claimed.c.id, claimed.c.attempt).order_by(
        *_claim_order_of((claimed.c[key.name] for key in sort_keys), _priority_nullable(b))
    )


def _one_of(binding: TableBinding, rows: Select[Any]) -> ColumnElement[bool]:
    """``pk = ANY(CAST((SELECT array_agg(pk) FROM (<rows>)) AS <pk type>[]))``.

    Not ``pk IN (<rows>)``: for that the planner estimates the rows from the LIMIT (or,
    with a generic plan, a tenth of the table) and, past a few hundred, joins by reading
    the whole table, so a claim of 1,000 rows cost a scan of every row. The array is
    computed first (an InitPlan), and the update then finds each row by its primary key.
    """
    chosen = rows.subquery("curate_chosen")
    ids = select(func.array_agg(chosen.c[binding.pk.name])).scalar_subquery()
    return binding.pk == any_(cast(ids, ARRAY(binding.pk.type)))


def _claim_sort_keys(binding: TableBinding) -> list[Column[Any]]:
    """Higher priority first (where the table has the column), then the workflow's order."""
    if binding.priority is None:
        return [binding.order_by]
    return [binding.priority, binding.order_by]


def _claim_order(binding: TableBinding) -> list[ColumnElement[Any]]:
    return _claim_order_of(_claim_sort_keys(binding), _priority_nullable(binding))


def _priority_nullable(binding: TableBinding) -> bool:
    return binding.priority is not None and bool(binding.priority.nullable)


def _claim_order_of(
    keys: Iterable[ColumnElement[Any]], priority_nullable: bool = False
) -> list[ColumnElement[Any]]:
    """``keys`` as an ORDER BY: the first descending when there are two (the priority).

    A NULL priority sorts as the lowest (PostgreSQL's DESC puts NULLs first). curate's
    own priority column is NOT NULL, so its index keeps the plain ``DESC``.
    """
    keys = list(keys)
    if len(keys) != 2:
        return keys
    first = keys[0].desc().nulls_last() if priority_nullable else keys[0].desc()
    return [first, keys[1]]


def _lock_free(binding: TableBinding) -> ColumnElement[bool]:
    """With a lock key: the row runs only when no row with its key is Processing and none
    queued ahead of it (in the workflow's order, then by id) is still waiting.

    So rows sharing a key run one at a time and in queue order, on every worker: a claim
    sees either the earlier row still Queued or Processing (and skips this one) or the
    earlier row finished. Rows whose key is NULL are not locked.
    """
    b = binding
    if b.lock_key is None:
        return true()
    other = b.table.alias("curate_lock_holder")
    adapt = ClauseAdapter(other).traverse
    other_status = other.c[b.status.name]
    ahead = _ahead_in_order(other.c[b.order_by.name], other.c[b.pk.name], b.order_by, b.pk)
    holder: Select[Any] = (
        select(literal_column("1"))
        .select_from(other)
        .where(
            adapt(b.lock_key) == b.lock_key,
            other.c[b.pk.name] != b.pk,
            or_(
                other_status == b.status_value(b.statuses.processing),
                and_(other_status == b.status_value(b.statuses.queued), ahead),
            ),
        )
    )
    return or_(b.lock_key.is_(None), ~holder.exists())


def _ahead_in_order(
    order: ColumnElement[Any], pk: ColumnElement[Any], my_order: Column[Any], my_pk: Column[Any]
) -> ColumnElement[bool]:
    """(order, pk) comes before (my_order, my_pk) as the claim's ``ORDER BY order`` sorts
    them: NULLs last, ties by primary key. A row comparison would give NULL (never ahead)
    as soon as an order value is NULL."""
    return or_(
        order < my_order,
        and_(order.is_not(None), my_order.is_(None)),
        and_(order.is_not_distinct_from(my_order), pk < my_pk),
    )


def _claim_fence(binding: TableBinding) -> ColumnElement[bool]:
    """The row is still ours: same id and, where the columns exist, same claim and attempt.

    The claim token is new for every claim, so no requeue (which resets ``attempts``) can
    make a later claim look like an earlier one.
    """
    conditions = [binding.pk == bindparam("curate_id")]
    if binding.claimed_by is not None:
        conditions.append(binding.claimed_by == bindparam("curate_claim"))
    if binding.attempts is not None:
        conditions.append(binding.attempts == bindparam("curate_attempt"))
    return and_(*conditions)


def _lease_cleared(binding: TableBinding) -> dict[Any, Any]:
    return {binding.lease_until: null()} if binding.lease_until is not None else {}


def _complete(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    still_processing = b.status == _status_param(b, "curate_processing")
    return (
        update(b.table)
        .where(_claim_fence(b))
        .values(
            {
                b.status: case(
                    (still_processing, _status_param(b, "curate_complete")), else_=b.status
                ),
                b.error: case((still_processing, null()), else_=b.error),
                **_lease_cleared(b),
                **_touch(b),
            }
        )
        .returning(b.status.label("status"))
    )


def _complete_many(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    assert b.attempts is not None and b.claimed_by is not None
    ids = bindparam("curate_ids", type_=ARRAY(b.pk.type))
    claims = bindparam("curate_claims", type_=ARRAY(b.claimed_by.type))
    attempts = bindparam("curate_attempts", type_=ARRAY(Integer()))
    # Rows found by primary key (ANY); each row's claim and attempt looked up by its
    # position in the ids. A join against unnest(ids, attempts) is planned as a nested
    # loop that unnests the arrays again for every row: a thousand times the work.
    position = func.array_position(ids, b.pk)
    return (
        update(b.table)
        .where(
            b.pk == any_(ids),
            b.attempts == Grouping(attempts)[position],
            b.claimed_by == Grouping(claims)[position],
            b.status == _status_param(b, "curate_processing"),
        )
        .values(
            {
                b.status: _status_param(b, "curate_complete"),
                b.error: null(),
                **_lease_cleared(b),
                **_touch(b),
            }
        )
        .returning(b.pk)
    )


def _fail(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    values: dict[Any, Any] = {
        b.status: _status_param(b, "curate_to_status"),
        b.error: bindparam("curate_error"),
        **_lease_cleared(b),
        **_touch(b),
    }
    if b.run_after is not None:
        values[b.run_after] = _now() + func.make_interval(
            0, 0, 0, 0, 0, 0, bindparam("curate_delay_seconds", type_=Float())
        )
    return (
        update(b.table)
        .where(_claim_fence(b), b.status == _status_param(b, "curate_processing"))
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
    processing = b.status == b.status_value(b.statuses.processing)
    if b.attempts is not None:
        # A row queued while it runs keeps its count: the next claim's attempt number then
        # differs from the running one's, whose outcome the fence refuses.
        values[b.attempts] = case((processing, b.attempts), else_=0)
    if b.claimed_by is not None:
        values[b.claimed_by] = case((processing, null()), else_=b.claimed_by)
    if b.run_after is not None:
        run_at = bindparam("curate_run_at", type_=DateTime(timezone=True))
        run_in = bindparam("curate_run_in", type_=Interval())
        values[b.run_after] = func.coalesce(run_at, _now() + run_in)
    if b.priority is not None:
        values[b.priority] = func.coalesce(
            bindparam("curate_priority", type_=Integer()), b.priority
        )
    return update(b.table).where(pk_in_ids(b.pk)).values(values)


def _release(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    values: dict[Any, Any] = {
        b.status: _status_param(b, "curate_queued"),
        **_lease_cleared(b),
        **_touch(b),
    }
    if b.attempts is not None:
        values[b.attempts] = b.attempts - 1
    return (
        update(b.table)
        .where(_claim_fence(b), b.status == _status_param(b, "curate_processing"))
        .values(values)
        .returning(b.pk)
    )


def _status_inline(binding: TableBinding, status: enum.Enum, name: str) -> ColumnElement[bool]:
    """``status = <value>`` with the value rendered inline through the column's type, so the
    planner matches it to the partial index even for a generic plan of a prepared statement.
    """
    return binding.status == bindparam(
        name, binding.status_value(status), type_=binding.status.type, literal_execute=True
    )


def _held(binding: TableBinding) -> ColumnElement[bool]:
    """The row is Processing under one of the ``curate_claims`` (id, claim token) pairs."""
    b = binding
    assert b.claimed_by is not None
    return and_(
        tuple_(b.pk, b.claimed_by).in_(bindparam("curate_claims", expanding=True)),
        b.status == _status_param(b, "curate_processing"),
    )


def _heartbeat(binding: TableBinding) -> ReturningUpdate[Any] | None:
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
        .where(_one_of(b, free), _held(b))
        .values({b.lease_until: func.now() + bindparam("curate_lease", type_=Interval())})
        .returning(b.pk.label("id"), b.claimed_by.label("claim"))
    )


def _still_held(binding: TableBinding) -> Select[Any] | None:
    """Which of the ``curate_claims`` are still Processing under their claim: read without
    locking, so it tells a row the heartbeat skipped (locked) from one it lost."""
    b = binding
    if b.lease_until is None or b.claimed_by is None:
        return None
    return select(b.pk.label("id"), b.claimed_by.label("claim")).where(_held(b))


def _claimed_with(binding: TableBinding) -> Select[Any] | None:
    """The rows a claim token holds (``curate_claim``): ``id``, ``attempt``, in claim
    order. A claim whose reply was lost with the connection did commit or did not; its
    retry looks here before claiming again, so it never holds two batches at once."""
    b = binding
    if b.claimed_by is None:
        return None
    attempt = b.attempts if b.attempts is not None else literal_column("1")
    return (
        select(b.pk.label("id"), attempt.label("attempt"))
        .where(
            b.claimed_by == bindparam("curate_claim"),
            b.status == _status_param(b, "curate_processing"),
        )
        .order_by(*_claim_order(b))
    )


def _rescue_expired(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    assert b.lease_until is not None
    expired = (
        select(b.pk)
        .where(
            _status_inline(b, b.statuses.processing, "curate_processing_inline"),
            b.lease_until < func.now(),
        )
        .with_for_update(skip_locked=True)
    )
    attempt: ColumnElement[Any] = b.attempts if b.attempts is not None else literal_column("1")
    out_of_attempts = attempt >= bindparam("curate_max_attempts")
    values: dict[Any, Any] = {
        b.status: case(
            (out_of_attempts, _status_param(b, "curate_failed")),
            else_=_status_param(b, "curate_queued"),
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
        **_touch(b),
    }
    if b.claimed_by is not None:
        values[b.claimed_by] = null()
    if b.run_after is not None:
        values[b.run_after] = null()
    return (
        update(b.table)
        .where(_one_of(b, expired))
        .values(values)
        .returning(b.pk.label("id"), attempt.label("attempt"), b.status.label("status"))
    )


def _rescue_stale(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    assert b.updated_at is not None
    stale = (
        select(b.pk)
        .where(
            _status_inline(b, b.statuses.processing, "curate_processing_inline"),
            b.updated_at < func.now() - bindparam("curate_stale", type_=Interval()),
        )
        .with_for_update(skip_locked=True)
    )
    return (
        update(b.table)
        .where(_one_of(b, stale))
        .values(
            {
                b.status: _status_param(b, "curate_queued"),
                b.error: "Stale: Processing for longer than the stale age; queued again",
                **_touch(b),
            }
        )
        .returning(b.pk.label("id"), literal_column("1").label("attempt"), b.status.label("status"))
    )


def _requeue_where(binding: TableBinding, selection: RequeueSelection) -> ColumnElement[bool]:
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


def _status_summary(binding: TableBinding) -> Select[Any]:
    b = binding
    roles = {
        role: b.status == _status_param(b, f"curate_{role}")
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


def _error_groups(binding: TableBinding) -> Select[Any]:
    """Errors differing only in ids and numbers (a URL, a line number) fall in one group:
    the group's ``message`` has them as ``<uuid>`` and ``N``; ``example`` is a real one."""
    b = binding
    first_line = func.left(func.split_part(func.coalesce(b.error, ""), "\n", 1), 300)
    message = func.regexp_replace(
        func.regexp_replace(first_line, UUID_PATTERN, "<uuid>", "gi"), "[0-9]+", "N", "g"
    )
    rows = func.count()
    last_seen = func.max(b.updated_at) if b.updated_at is not None else null()
    return (
        select(
            message.label("message"),
            rows.label("rows"),
            last_seen.label("last_seen"),
            func.min(first_line).label("example"),
        )
        .where(b.status == _status_param(b, "curate_failed"))
        .group_by(message)
        .order_by(rows.desc(), message)
        .limit(bindparam("curate_limit"))
    )


TABLE_COLUMNS = text(
    "SELECT attname FROM pg_catalog.pg_attribute"
    " WHERE attrelid = to_regclass(:curate_table) AND attnum > 0 AND NOT attisdropped"
)
"""The column names of a table as the search_path finds it; no rows: no such table."""


def table_columns_params(table: Table) -> dict[str, Any]:
    quoted = ".".join(
        '"' + part.replace('"', '""') + '"' for part in (table.schema, table.name) if part
    )
    return {"curate_table": quoted}


NOTIFY = text("SELECT pg_notify(:curate_channel, '')")
"""Wake the workers listening on a workflow's channel (params: ``curate_channel``)."""
