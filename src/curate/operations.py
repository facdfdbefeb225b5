"""Operations on a workflow's rows, shared by the CLI and the FastAPI router.

Reading how a workflow's queue stands, reading one item's processing state, converting
item ids to the primary key's type, re-queueing a selection of rows, and pausing and
resuming a workflow. Plain data in, plain dataclasses out: no printing, no HTTP, no exit
codes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, Row, SmallInteger, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from curate.db.own_tables import missing_table
from curate.engine.attempt_history import why_not_recordable
from curate.engine.cancel import REASON_MAX_LENGTH
from curate.errors import ConfigurationError
from curate.sql import RequeueSelection
from curate.sql import cancel as cancel_sql
from curate.sql import controls as controls_sql
from curate.sql import history as history_sql
from curate.sql import own_tables as own_tables_sql
from curate.sql.cancel import CancelSelection
from curate.workflow import Workflow, notify

THROUGHPUT_WINDOW = timedelta(minutes=5)
"""Completions are counted over this window for the throughput figure."""

ERROR_GROUPS = 5
"""How many error groups are read per workflow, largest first."""

_INTEGER_BITS = ((SmallInteger, 16), (BigInteger, 64), (Integer, 32))


class InvalidItemId(ValueError):
    """An item id that cannot be a value of the workflow's primary key."""


@dataclass(frozen=True)
class ErrorGroup:
    """Failed rows whose errors' first lines differ only in ids and numbers."""

    message: str  # the first line, with UUIDs as <uuid> and numbers as N
    rows: int
    last_seen: datetime | None
    example: str  # one of the real first lines


@dataclass(frozen=True)
class WorkflowStatus:
    """One workflow's queue at one instant; None where the table lacks the column."""

    name: str
    table: str
    counts: dict[str, int]  # queued, processing, complete, error, other, unset
    oldest_queued_seconds: float | None
    expired_leases: int | None
    throughput_per_minute: float | None
    errors: list[ErrorGroup]
    paused: bool  # no worker claims its rows (curate pause)
    paused_at: datetime | None
    paused_reason: str | None
    rate_limit: float | None  # items a second across all workers; None: unlimited

    @property
    def failures_found(self) -> bool:
        return self.counts["error"] > 0 or bool(self.expired_leases)


@dataclass(frozen=True)
class StatusReport:
    """Every selected workflow, read in one snapshot at the database's time ``at``."""

    at: datetime
    workflows: list[WorkflowStatus]

    @property
    def failures_found(self) -> bool:
        return any(w.failures_found for w in self.workflows)


@dataclass(frozen=True)
class ItemState:
    """One row's processing state in one workflow; None where the table lacks the column."""

    id: Any
    status: str | None
    error: str | None
    attempts: int | None
    run_after: datetime | None
    claimed_by: str | None
    lease_until: datetime | None
    updated_at: datetime | None


async def read_status(engine: AsyncEngine, workflows: Sequence[Workflow]) -> StatusReport:
    """Read every workflow's figures and controls in one repeatable-read snapshot."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ")
        at = (await connection.execute(select(func.now()))).scalar_one()
        controls = await _controls(connection, [w.name for w in workflows])
        found = [
            await _workflow_status(connection, workflow, controls.get(workflow.name))
            for workflow in workflows
        ]
    return StatusReport(at=at, workflows=found)


async def _controls(connection: AsyncConnection, names: list[str]) -> dict[str, Row[Any]]:
    """The workflows' rows of the controls table; without the table (no migration made it
    yet), nothing is paused."""
    exists = own_tables_sql.table_exists_params(controls_sql.TABLE)
    if not await connection.scalar(own_tables_sql.TABLE_EXISTS, exists):
        return {}
    found = await connection.execute(controls_sql.READ, {"curate_workflows": names})
    return {row.workflow: row for row in found}


async def _workflow_status(
    connection: AsyncConnection, workflow: Workflow, control: Row[Any] | None
) -> WorkflowStatus:
    """``control``: the workflow's row of the controls table (None: never paused)."""
    statements = workflow.statements
    summary = (
        await connection.execute(
            statements.status_summary, statements.status_params(THROUGHPUT_WINDOW)
        )
    ).one()
    groups = await connection.execute(
        statements.error_groups, statements.error_groups_params(ERROR_GROUPS)
    )
    minutes = THROUGHPUT_WINDOW.total_seconds() / 60
    return WorkflowStatus(
        name=workflow.name,
        table=workflow.binding.table.name,
        counts={
            "queued": summary.queued,
            "processing": summary.processing,
            "complete": summary.complete,
            "error": summary.failed,
            "other": summary.other,
            "unset": summary.unset,
        },
        oldest_queued_seconds=_rounded(summary.oldest_queued_seconds, 1),
        expired_leases=summary.expired_leases,
        throughput_per_minute=_rounded(
            None if summary.completed_recently is None else summary.completed_recently / minutes, 2
        ),
        errors=[ErrorGroup(r.message, r.rows, r.last_seen, r.example) for r in groups],
        paused=bool(control and control.paused),
        paused_at=control.paused_at if control else None,
        paused_reason=control.paused_reason if control else None,
        rate_limit=workflow.load_settings().rate_limit,
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


async def read_item(engine: AsyncEngine, workflow: Workflow, item_id: Any) -> ItemState | None:
    """One row's processing state (``item_id`` already converted, see `item_ids`);
    None when the table has no such row."""
    statements = workflow.statements
    async with engine.connect() as connection:
        row = (
            await connection.execute(statements.item_state, statements.item_state_params(item_id))
        ).one_or_none()
    if row is None:
        return None
    status = row.status.value if isinstance(row.status, enum.Enum) else row.status
    return ItemState(
        id=row.id,
        status=status,
        error=row.error,
        attempts=row.attempts,
        run_after=row.run_after,
        claimed_by=row.claimed_by,
        lease_until=row.lease_until,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class Attempt:
    """One attempt of one item, as it ended (`curate.sql.history`)."""

    attempt: int
    started_at: datetime | None  # None: rescued after its worker was lost, or batched
    ended_at: datetime
    worker: str | None
    outcome: str  # completed, failed, retried, interrupted, lease expired, …
    error: str | None
    error_type: str | None
    traceback: str | None  # the innermost frames


ATTEMPTS_SHOWN = 50
"""How many of an item's attempts are read, newest first."""


async def read_attempts(
    engine: AsyncEngine, workflow: Workflow, item_id: Any, limit: int = ATTEMPTS_SHOWN
) -> list[Attempt] | None:
    """An item's attempts, newest first; None when the history's table does not exist."""
    if await missing_table(engine, history_sql.TABLE) is not None:
        return None
    async with engine.connect() as connection:
        rows = await connection.execute(
            history_sql.ITEM_ATTEMPTS,
            {"curate_workflow": workflow.name, "curate_item": str(item_id), "curate_limit": limit},
        )
        return [Attempt(**row._mapping) for row in rows]


def item_ids(workflow: Workflow, raw: Iterable[Any]) -> tuple[Any, ...]:
    """``raw`` ids as values of the primary key's Python type (int, UUID, str…).

    Raises `InvalidItemId` naming the value and the column for one that cannot be,
    including integers out of the column's range.
    """
    pk = workflow.binding.pk
    where = f"{workflow.binding.table.name}.{pk.name}"
    try:
        python_type = pk.type.python_type
    except NotImplementedError:
        python_type = object
    bits = next((n for sql_type, n in _INTEGER_BITS if isinstance(pk.type, sql_type)), None)
    converted = []
    for value in raw:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidItemId(f"{value!r} contains a NUL character")
        if python_type is object:
            converted.append(value)
            continue
        try:
            typed = python_type(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError, AttributeError):  # UUID(5): AttributeError
            typed = None
        if typed is None:
            raise InvalidItemId(
                f"{value!r} is not a valid {python_type.__name__} (the type of {where})"
            )
        if bits is not None and not -(2 ** (bits - 1)) <= typed < 2 ** (bits - 1):
            raise InvalidItemId(f"{value!r} is out of range for {where} ({bits}-bit integer)")
        converted.append(typed)
    return tuple(converted)


async def count_requeue(
    engine: AsyncEngine, workflow: Workflow, selection: RequeueSelection
) -> int:
    """How many rows `requeue` would move now."""
    async with engine.connect() as connection:
        counted = await connection.execute(workflow.statements.requeue_count(selection))
        count: int = counted.scalar_one()
        return count


async def requeue(engine: AsyncEngine, workflow: Workflow, selection: RequeueSelection) -> int:
    """Put the selected rows back to Queued afresh; how many moved.

    Fenced: a row a worker claimed since it was counted is left alone.
    """
    async with engine.begin() as connection:
        result = await connection.execute(workflow.statements.requeue(selection))
        return len(result.all())


@dataclass(frozen=True)
class CancelCount:
    """What a cancel takes: rows that end cancelled at once (Queued, or Processing with no
    live worker; with ``errors``, rows in Error) and running rows whose worker is asked."""

    waiting: int
    running: int


async def count_cancel(
    engine: AsyncEngine, workflow: Workflow, selection: CancelSelection
) -> CancelCount:
    """How many rows `cancel` would take now (``--dry-run``, the confirmation)."""
    _check_cancel(workflow, selection)
    b = workflow.binding
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            cancel_sql.count(b, cancel_sql.waiting_where(b, selection))
        )
        running = await connection.scalar(
            cancel_sql.count(b, cancel_sql.running_where(b, selection))
        )
    return CancelCount(waiting or 0, running or 0)


async def cancel(
    engine: AsyncEngine,
    workflow: Workflow,
    selection: CancelSelection,
    reason: str | None = None,
    *,
    record_history: bool = True,
) -> CancelCount:
    """Cancel the selected rows, in one transaction: those waiting end in the workflow's
    cancelled status (its failed status if it has none) at once; the worker of each
    running one is asked to cancel it where it runs (it then records the outcome, fenced
    on its claim). Returns how many of each; a running row that finishes before its
    worker hears keeps its outcome.

    Raises `ConfigurationError` when running rows are selected and the requests' table
    does not exist, or when ``errors`` is asked of a workflow without a cancelled status.
    """
    _check_cancel(workflow, selection)
    b = workflow.binding
    message = f"Cancelled: {_cut(reason)}" if reason else "Cancelled"
    logged = record_history and await why_not_recordable(engine) is None
    requests_missing = await missing_table(engine, cancel_sql.TABLE)
    async with engine.begin() as connection:
        if requests_missing is not None:
            running = await connection.scalar(
                cancel_sql.count(b, cancel_sql.running_where(b, selection))
            )
            if running:
                raise ConfigurationError(
                    f"cannot cancel {running} running row(s) of {workflow.name}:"
                    f" {requests_missing}; {requests_missing.how_to_create}"
                )
        moved = await connection.execute(
            cancel_sql.cancel_waiting(b, selection, with_history=logged),
            {
                "curate_cancelled": b.status_value(b.statuses.cancel_ends_in),
                "curate_error": message,
                "curate_workflow": workflow.name,
            },
        )
        waiting = len(moved.all())
        asked = 0
        if requests_missing is None and b.claimed_by is not None and not selection.errors:
            requested = await connection.execute(
                cancel_sql.request_running(b, selection),
                {"curate_workflow": workflow.name, "curate_reason": _cut(reason)},
            )
            asked = len(requested.all())
    return CancelCount(waiting, asked)


def _cut(reason: str | None) -> str | None:
    if reason is None or len(reason) <= REASON_MAX_LENGTH:
        return reason
    return reason[: REASON_MAX_LENGTH - 1] + "…"


def _check_cancel(workflow: Workflow, selection: CancelSelection) -> None:
    if selection.errors and workflow.statuses.cancelled is None:
        raise ConfigurationError(
            f"workflow {workflow.name} has no cancelled status, so its rows in"
            f" {workflow.statuses.failed.value} are final already; give its status enum a"
            " member named Cancelled, or name one with Workflow(cancelled_status=...)"
        )


async def pause_workflow(
    engine: AsyncEngine, workflow: Workflow, reason: str | None = None
) -> bool:
    """Stop every worker from claiming ``workflow``'s rows, from its next claim on; items
    already running finish. False if it was paused already (its reason is kept)."""
    await _require_controls(engine, f"cannot pause {workflow.name}")
    async with engine.begin() as connection:
        changed = await connection.execute(
            controls_sql.PAUSE, {"curate_workflow": workflow.name, "curate_reason": reason}
        )
        return changed.one_or_none() is not None


async def resume_workflow(engine: AsyncEngine, workflow: Workflow) -> bool:
    """Let workers claim ``workflow``'s rows again, and wake the listening ones at once.
    False if it was not paused."""
    await _require_controls(engine, f"cannot resume {workflow.name}")
    async with AsyncSession(engine) as session, session.begin():
        changed = await session.execute(controls_sql.RESUME, {"curate_workflow": workflow.name})
        if changed.one_or_none() is None:
            return False
        await notify(session, workflow)
        return True


async def _require_controls(engine: AsyncEngine, refused: str) -> None:
    """Raise `ConfigurationError` (``refused``: what cannot be done) when the controls
    table is missing: it comes from a migration, never from the app's role."""
    missing = await missing_table(engine, controls_sql.TABLE)
    if missing is not None:
        raise ConfigurationError(f"{refused}: {missing}; {missing.how_to_create}")
