"""The statements of one workflow over its table, built once from its binding.

Statements are built once per workflow from its `TableBinding` (so SQLAlchemy's compiled
cache serves every later execution) and compare statuses through the column's own type,
so PostgreSQL enum columns and plain string columns both work and no status literal is
written into SQL. Parameters are bound by name; each statement's docstring lists them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Interval,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import ReturningUpdate, Update
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.util import ClauseAdapter

from curate.engine.binding import TableBinding
from curate.sql import history, leases, reports
from curate.sql.controls import not_paused
from curate.sql.expressions import (
    claim_order,
    claim_order_of,
    claim_sort_keys,
    lease_cleared,
    now_or_frozen,
    pk_among,
    pk_in_ids,
    status_inline,
    status_param,
    touch,
    trace_context_returned,
)
from curate.sql.reports import RequeueSelection

Write = ReturningUpdate[Any] | Select[Any]
"""An outcome's write: a fenced UPDATE, or with attempt history the UPDATE inside a
statement that also inserts the attempt (`WorkflowStatements.with_history`)."""


@dataclass(frozen=True)
class WorkflowStatements:
    """The named statements of one workflow.

    - ``claim``: marks up to ``limit`` due queued rows Processing, counts the attempt,
      stamps worker and lease, clears the error; nothing while the workflow is paused
      (`curate.sql.controls`); with a lock key, skips rows whose key is held (see
      `_lock_free`). Returns ``id``, ``attempt`` (and ``trace_context`` where the table
      has it) by priority, then the workflow's order.
    - ``claim_without_controls``: the same without the pause check, for a database that
      has no ``curate_workflow_controls`` yet (where nothing can be paused).
    - ``complete``: fenced on the claim; sets the complete status unless the service
      already moved the row out of Processing. Returns the row's final ``status``; no row
      means the claim was lost.
    - ``complete_many`` (batched outcomes): marks complete every row of ``curate_ids``
      still Processing under its claim (``curate_claims``, ``curate_attempts``, same
      order), in one statement; returns the ids it updated. None without
      attempts/claimed_by.
    - ``fail``: fenced on the claim and on Processing; re-queues after a delay or sets
      the failed status for good (``delay_seconds`` None).
    - ``snooze``: fenced on the claim, on Processing and on fewer than
      ``curate_max_snoozes`` snoozes; back to Queued after ``curate_delay_seconds``, the
      attempt given back, the snooze counted. None without attempts, run_after, snoozes.
    - ``queue``: queues rows afresh (attempts 0 unless the row is running), due now, at
      ``curate_run_at`` or after ``curate_run_in``, with ``curate_priority`` if given;
      stores ``curate_trace_context`` where the table has the column.
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
    claim_without_controls: Select[Any]
    complete: Write
    complete_many: Write | None
    fail: Write
    snooze: Write | None
    queue: Update
    release: ReturningUpdate[Any]
    heartbeat: ReturningUpdate[Any] | None
    still_held: Select[Any] | None
    claimed_with: Select[Any] | None
    rescue: Write | None
    status_summary: Select[Any]
    error_groups: Select[Any]
    binding: TableBinding
    records_history: bool = False
    """Whether the outcome writes record the attempts that did not complete
    (`with_history`)."""
    records_completions: bool = False
    """Whether the completions record theirs too (`with_history`, ``completions``)."""

    @classmethod
    def build(cls, binding: TableBinding) -> WorkflowStatements:
        return cls(
            claim=_claim(binding),
            claim_without_controls=_claim(binding, check_pause=False),
            complete=_complete(binding),
            complete_many=_complete_many(binding) if binding.fences_by_claim else None,
            fail=_fail(binding),
            snooze=_snooze(binding),
            queue=_queue(binding),
            release=_release(binding),
            heartbeat=leases.heartbeat(binding),
            still_held=leases.still_held(binding),
            claimed_with=leases.claimed_with(binding),
            rescue=_rescue(binding),
            status_summary=reports.status_summary(binding),
            error_groups=reports.error_groups(binding),
            binding=binding,
        )

    def with_history(self, *, completions: bool) -> WorkflowStatements:
        """These statements with the outcome writes also recording the attempt in
        ``curate_attempts``, in the same statement (`curate.sql.history.logged`): failures,
        retries, snoozes and the rescue always; completions (single and batched) only with
        ``completions``. The others are shared.

        The writes are built afresh, not taken from these: a statement that has run keeps
        its columns memoized, and the RETURNING columns `logged` adds would not show."""
        b = self.binding
        snooze = _snooze(b)
        rescue = _rescue(b)
        logged = replace(
            self,
            fail=history.logged(_fail(b), b),
            snooze=None if snooze is None else _logged_snooze(b, snooze),
            rescue=None if rescue is None else _logged_rescue(b, rescue),
            records_history=True,
        )
        if not completions:
            return logged
        return replace(
            logged,
            records_completions=True,
            complete=history.logged(
                _complete(b),
                b,
                outcome=history.outcome_of_status(
                    b, if_failed=history.FAILED, otherwise=history.COMPLETED
                ),
                **_ROW_ERROR,
            ),
            complete_many=None if self.complete_many is None else _logged_complete_many(b),
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

    def snooze_params(
        self,
        item_id: Any,
        claim: str,
        attempt: int,
        *,
        delay_seconds: float,
        max_snoozes: int,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """``now``: a frozen clock's time (tests) the delay counts from."""
        statuses = self.binding.statuses
        return {
            **_fence_params(item_id, claim, attempt),
            "curate_processing": self._status(statuses.processing),
            "curate_queued": self._status(statuses.queued),
            "curate_delay_seconds": delay_seconds,
            "curate_max_snoozes": max_snoozes,
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
        trace_context: str | None = None,
    ) -> dict[str, Any]:
        """Due at ``run_at``, or ``run_in`` after now (``now``: a frozen clock's time), or
        at once; ``priority`` None keeps the row's priority; ``trace_context``: the
        queueing span's ``traceparent`` (`curate.trace_context`), for tables with the
        column."""
        return {
            "curate_ids": list(ids),
            "curate_run_at": run_at,
            "curate_run_in": run_in,
            "curate_priority": priority,
            "curate_now": now,
            "curate_trace_context": trace_context,
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
            **lease_cleared(b),
            **touch(b),
        }
        afresh = ((b.attempts, 0), (b.snoozes, 0), (b.run_after, null()), (b.claimed_by, null()))
        for column, value in afresh:
            if column is not None:
                values[column] = value
        return (
            update(b.table)
            .where(reports.requeue_where(b, selection))
            .values(values)
            .returning(b.pk)
        )

    def requeue_count(self, selection: RequeueSelection) -> Select[Any]:
        """How many rows `requeue` would move now (``--dry-run``, the confirmation)."""
        b = self.binding
        return select(func.count()).select_from(b.table).where(reports.requeue_where(b, selection))

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
        queued = status_inline(b, b.statuses.queued, "curate_queued")
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
        return select(func.min(b.run_after) - now_or_frozen()).where(
            status_inline(b, b.statuses.queued, "curate_queued"), b.run_after > now_or_frozen()
        )

    @staticmethod
    def earliest_due_params(now: datetime | None = None) -> dict[str, Any]:
        return {"curate_now": now}

    def _status(self, status: enum.Enum) -> Any:
        return self.binding.status_value(status)


def _rescue(binding: TableBinding) -> ReturningUpdate[Any] | None:
    """By lease where the table has one, else by ``updated_at``; None with neither."""
    if binding.lease_until is not None:
        return leases.rescue_expired(binding)
    return leases.rescue_stale(binding) if binding.updated_at is not None else None


_ROW_ERROR = {
    "error": history.row_error,
    "error_type": history.nothing,
    "traceback": history.nothing,
}
"""A completion's or the rescue's attempt: its error is the row's own (a service that wrote
Error itself; the rescue's), with no exception to tell the type or traceback of."""


def _logged_complete_many(binding: TableBinding) -> Select[Any]:
    ids = bindparam("curate_ids", type_=ARRAY(binding.pk.type))
    return history.logged(
        _complete_many(binding),
        binding,
        outcome=history.given_text(history.COMPLETED),
        started_at=history.started_by_position(ids),
        **_ROW_ERROR,
    )


def _logged_snooze(binding: TableBinding, snooze: ReturningUpdate[Any]) -> Select[Any]:
    return history.logged(
        snooze,
        binding,
        outcome=history.given_text(history.SNOOZED),
        attempt=history.given_back,
        error=history.nothing,
        error_type=history.nothing,
        traceback=history.nothing,
    )


def _logged_rescue(binding: TableBinding, rescue: ReturningUpdate[Any]) -> Select[Any]:
    outcome = history.outcome_of_status(
        binding, if_failed=history.FAILED, otherwise=history.LEASE_EXPIRED
    )
    return history.logged_from_outside(rescue, binding, outcome=outcome)


def _fence_params(item_id: Any, claim: str, attempt: int) -> dict[str, Any]:
    return {"curate_id": item_id, "curate_claim": claim, "curate_attempt": attempt}


def _claim(binding: TableBinding, *, check_pause: bool = True) -> Select[Any]:
    """The claim: ``curate_chosen`` picks and locks the rows and numbers them in claim
    order; the UPDATE finds them by primary key (an array, see `one_of`); the rows come
    back in that numbered order. Not in an order of the UPDATE's RETURNING: that shows
    the new values, and the claim itself rewrites ``updated_at``, the seed's usual order.
    """
    b = binding
    queued = status_inline(b, b.statuses.queued, "curate_queued")
    due: ColumnElement[bool] = true()
    if b.run_after is not None:
        due = or_(b.run_after.is_(None), b.run_after <= now_or_frozen())
    keys = claim_sort_keys(b)
    pause = (not_paused(),) if check_pause else ()
    candidates = (
        select(b.pk, *(key.label(f"sort_key_{n}") for n, key in enumerate(keys)))
        .where(queued, due, *_matching(b), _lock_free(b), *pause)
        .order_by(*claim_order(b))
        .limit(bindparam("curate_limit"))
        .with_for_update(skip_locked=True)
        .subquery("curate_candidates")
    )
    sort_keys = [candidates.c[f"sort_key_{n}"] for n in range(len(keys))]
    position = func.row_number().over(
        order_by=[*claim_order_of(b, sort_keys), candidates.c[b.pk.name]]
    )
    chosen = select(candidates.c[b.pk.name].label("id"), position.label("position")).cte(
        "curate_chosen"
    )
    values: dict[Any, Any] = {
        b.status: status_param(b, "curate_processing"),
        b.error: null(),
        **touch(b),
    }
    if b.attempts is not None:
        values[b.attempts] = b.attempts + 1
    if b.claimed_by is not None:
        values[b.claimed_by] = bindparam("curate_claim")
    if b.lease_until is not None:
        values[b.lease_until] = func.now() + bindparam("curate_lease", type_=Interval())
    attempt = b.attempts if b.attempts is not None else literal_column("1")
    claimed = (
        update(b.table)
        .where(pk_among(b, chosen.c.id))
        .values(values)
        .returning(b.pk.label("id"), attempt.label("attempt"), *trace_context_returned(b))
        .cte("claimed")
    )
    return select(*claimed.c).join(chosen, chosen.c.id == claimed.c.id).order_by(chosen.c.position)


def _matching(binding: TableBinding) -> tuple[ColumnElement[bool], ...]:
    """The workflow's ``where``, if it has one: rows outside it are not its to claim, nor
    do they hold a key's place in its queue."""
    return () if binding.where is None else (binding.where,)


def _lock_free(binding: TableBinding) -> ColumnElement[bool]:
    """With a lock key: the row runs only when no row with its key is Processing and none
    queued ahead of it (in the workflow's order, then by id) is still waiting.

    So rows sharing a key run one at a time and in queue order, on every worker: a claim
    sees either the earlier row still Queued or Processing (and skips this one) or the
    earlier row finished. Rows whose key is NULL are not locked; queued rows outside the
    workflow's ``where`` hold no place.
    """
    b = binding
    if b.lock_key is None:
        return true()
    other = b.table.alias("curate_lock_holder")
    adapt = ClauseAdapter(other).traverse
    other_status = other.c[b.status.name]
    ahead = b.order.before(other.c[b.order_by.name], other.c[b.pk.name], b.order_by, b.pk)
    holder: Select[Any] = (
        select(literal_column("1"))
        .select_from(other)
        .where(
            adapt(b.lock_key) == b.lock_key,
            other.c[b.pk.name] != b.pk,
            or_(
                other_status == b.status_value(b.statuses.processing),
                and_(
                    other_status == b.status_value(b.statuses.queued),
                    ahead,
                    *(adapt(condition) for condition in _matching(b)),
                ),
            ),
        )
    )
    return or_(b.lock_key.is_(None), ~holder.exists())


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


def _complete(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    still_processing = b.status == status_param(b, "curate_processing")
    return (
        update(b.table)
        .where(_claim_fence(b))
        .values(
            {
                b.status: case(
                    (still_processing, status_param(b, "curate_complete")), else_=b.status
                ),
                b.error: case((still_processing, null()), else_=b.error),
                **lease_cleared(b),
                **touch(b),
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
            b.status == status_param(b, "curate_processing"),
        )
        .values(
            {
                b.status: status_param(b, "curate_complete"),
                b.error: null(),
                **lease_cleared(b),
                **touch(b),
            }
        )
        .returning(b.pk)
    )


def _fail(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    values: dict[Any, Any] = {
        b.status: status_param(b, "curate_to_status"),
        b.error: bindparam("curate_error"),
        **lease_cleared(b),
        **touch(b),
    }
    if b.run_after is not None:
        values[b.run_after] = now_or_frozen() + func.make_interval(
            0, 0, 0, 0, 0, 0, bindparam("curate_delay_seconds", type_=Float())
        )
    return (
        update(b.table)
        .where(_claim_fence(b), b.status == status_param(b, "curate_processing"))
        .values(values)
        .returning(b.pk)
    )


def _queue(binding: TableBinding) -> Update:
    b = binding
    values: dict[Any, Any] = {
        b.status: b.status_value(b.statuses.queued),
        b.error: null(),
        **lease_cleared(b),
        **touch(b),
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
        values[b.run_after] = func.coalesce(run_at, now_or_frozen() + run_in)
    if b.priority is not None:
        values[b.priority] = func.coalesce(
            bindparam("curate_priority", type_=Integer()), b.priority
        )
    if b.trace_context is not None:
        values[b.trace_context] = bindparam("curate_trace_context", type_=Text())
    if b.snoozes is not None:
        values[b.snoozes] = 0
    return update(b.table).where(pk_in_ids(b.pk)).values(values)


def _snooze(binding: TableBinding) -> ReturningUpdate[Any] | None:
    """None without the columns a snooze needs: the attempt count to give back, the time
    it is due and the count of snoozes that bounds them."""
    b = binding
    if b.attempts is None or b.run_after is None or b.snoozes is None:
        return None
    return (
        update(b.table)
        .where(
            _claim_fence(b),
            b.status == status_param(b, "curate_processing"),
            b.snoozes < bindparam("curate_max_snoozes", type_=Integer()),
        )
        .values(
            {
                b.status: status_param(b, "curate_queued"),
                b.error: null(),
                b.attempts: b.attempts - 1,
                b.snoozes: b.snoozes + 1,
                b.run_after: now_or_frozen()
                + func.make_interval(
                    0, 0, 0, 0, 0, 0, bindparam("curate_delay_seconds", type_=Float())
                ),
                **lease_cleared(b),
                **touch(b),
            }
        )
        .returning(b.pk)
    )


def _release(binding: TableBinding) -> ReturningUpdate[Any]:
    b = binding
    values: dict[Any, Any] = {
        b.status: status_param(b, "curate_queued"),
        **lease_cleared(b),
        **touch(b),
    }
    if b.attempts is not None:
        values[b.attempts] = b.attempts - 1
    return (
        update(b.table)
        .where(_claim_fence(b), b.status == status_param(b, "curate_processing"))
        .values(values)
        .returning(b.pk)
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


STATUS_INDEXED = text(
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index"
    " WHERE indrelid = to_regclass(:curate_table) AND indpred IS NOT NULL"
    " AND pg_get_expr(indpred, indrelid) ~ :curate_status_pattern)"
)
"""Whether the table has a partial index over the rows of one status: the queued index the
claim reads (`curate.migrations.create_queued_index`), the processing index the rescue
reads (`create_processing_index`)."""


def status_indexed_params(table: Table, status_column: str, status: enum.Enum) -> dict[str, Any]:
    """For `STATUS_INDEXED`: a predicate comparing ``status_column`` with ``status`` (its
    name, as an enum column stores it, or its value), as ``pg_get_expr`` prints it."""
    stored = "|".join(re.escape(str(form)) for form in {status.name, status.value})
    return {
        **table_columns_params(table),
        "curate_status_pattern": rf"\m{re.escape(status_column)}\M.* '({stored})'::",
    }


NOTIFY = text("SELECT pg_notify(:curate_channel, '')")
"""Wake the workers listening on a workflow's channel (params: ``curate_channel``)."""
