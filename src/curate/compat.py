"""`run_job_loop`: the seed-compatible entry, for schedulers written before curate.

Code written against the convention (``run_job_loop(model=..., status_enum=...,
queued_status=..., ...)``) keeps working by changing one import, and behaves as the
seed's SDK did where its users depend on it: one batch per call, items one at a time, no
per-item timeout, no retries, the order ``asc(Model.updated_at)`` (or what was passed). It
runs on a table that has only ``id``, the status column and the error column; curate's
other columns are not used by this entry even where the table has them.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import ClauseElement
from sqlalchemy.dialects import postgresql

from curate.columns import ColumnNames
from curate.engine.binding import ClaimFilter, Statuses, table_of
from curate.engine.config import NO_RETRY, RunConfig
from curate.engine.context import RunResult, ServiceFunction
from curate.engine.ordering import OrderBy, OrderSpec, order_spec
from curate.logs import propagate_to_logging
from curate.workflow import Workflow

MAX_CACHED_WORKFLOWS = 64
"""Seed call shapes kept built (their statements compiled); an app has a handful."""

_workflows: dict[tuple[Any, ...], Workflow] = {}
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


async def run_job_loop(
    *,
    model: Any,
    status_enum: type[enum.Enum],
    queued_status: enum.Enum,
    processing_status: enum.Enum,
    completed_status: enum.Enum,
    failed_status: enum.Enum,
    processing_function: ServiceFunction,
    batch_size: int,
    order_by_column: OrderBy = None,
    status_field_name: str = "status",
    error_field_name: str = "error",
    where: ClaimFilter = None,
    drain: bool = False,
    timeout_seconds: float | None = None,
    stale_after_seconds: float | None = None,
) -> RunResult:
    """Claim up to ``batch_size`` queued rows of ``model`` and run
    ``processing_function(item_id, session)`` on each, one at a time, in claim order.

    A function that returns leaves the row ``completed_status`` (unless it set a final
    status itself); one that raises leaves it ``failed_status`` with the error text.
    ``status_enum`` is accepted for compatibility; the four statuses given are used.

    curate's additions, all off by default:

    - ``where``: an SQL condition on the table's columns; only rows matching it are claimed.
    - ``drain``: keep claiming batches until the queue is empty (or the run's budget is
      spent) instead of one batch per call.
    - ``timeout_seconds``: cancel an item that runs longer and record it failed.
    - ``stale_after_seconds``: on a table with ``updated_at``, the rescuer puts rows left
      Processing longer than this (a crashed worker's) back to Queued.

    curate's log lines reach standard `logging` too (`curate.logs.propagate_to_logging`).
    """
    from curate.runtime import get_runtime

    propagate_to_logging()  # the seed's apps log through standard logging
    workflow = _seed_workflow(
        model,
        Statuses(
            queued=queued_status,
            processing=processing_status,
            complete=completed_status,
            failed=failed_status,
        ),
        processing_function,
        _seed_order(model, order_by_column),
        ColumnNames(status=status_field_name, error=error_field_name),
        where,
    )
    config = RunConfig(
        batch_size=batch_size,
        concurrency=1,
        timeout_seconds=timeout_seconds,
        retry=NO_RETRY,
        stale_after_seconds=stale_after_seconds,
        run_max_items=RunConfig.run_max_items if drain else batch_size,
    )
    return await get_runtime().run(workflow, config, service=processing_function)


def _seed_order(model: Any, order_by: OrderBy) -> OrderSpec:
    """The order as the seed's loop had it: what was given (``asc(Model.updated_at)``, a
    column, ...), else ``updated_at`` ascending where the table has it, else the primary
    key. An `OrderSpec`, not the expression: expressions compare as SQL, and the cache
    below needs a key that compares as a value."""
    table = table_of(model)
    default = "updated_at" if "updated_at" in table.c else table.primary_key.columns[0].key
    return order_spec(table, order_by, default)


def _seed_workflow(
    model: Any,
    statuses: Statuses,
    service: ServiceFunction,
    order_by: OrderSpec,
    columns: ColumnNames,
    where: ClaimFilter,
) -> Workflow:
    """One `Workflow` per call shape, so its statements are built once.

    The service is not part of the shape: seed schedulers pass a bound method of a service
    object built on every call, and each run is given the one it was called with.
    """
    key = (model, statuses, order_by, columns, _sql_key(where))
    workflow = _workflows.get(key)
    if workflow is None:
        table_name = getattr(model, "__tablename__", None) or getattr(model, "name", "items")
        workflow = Workflow(
            f"{table_name}_{columns.status}".lower(),
            model=model,
            service=service,
            statuses=statuses,
            columns=columns,
            order_by=order_by,
            where=where,
        )
        _ = workflow.binding  # a bad argument raises now, and is never cached
        if len(_workflows) >= MAX_CACHED_WORKFLOWS:
            del _workflows[next(iter(_workflows))]
        _workflows[key] = workflow
    return workflow


def _sql_key(where: ClaimFilter) -> tuple[str, str] | None:
    """``where`` as a value: its SQL and its parameters. A condition written inline in the
    job function is a new object on every call, but the same SQL."""
    if not isinstance(where, ClauseElement):
        return None if where is None else (type(where).__name__, repr(where))
    compiled = where.compile(dialect=_DIALECT)
    return str(compiled), repr(sorted(compiled.params.items()))
