"""`run_job_loop`: the seed-compatible entry, for schedulers written before curate.

Code written against the convention (``run_job_loop(model=..., status_enum=...,
queued_status=..., ...)``) keeps working by changing one import. It runs on a table that
has only ``id``, the status column and the error column; where the table has more of
curate's columns they are not needed and not used. Failures go straight to the failed
status (no retry), items run one at a time, as the seed's loop did.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

from curate.columns import ColumnNames
from curate.engine.binding import Statuses, table_of
from curate.engine.config import NO_RETRY, RunConfig
from curate.engine.context import RunResult, ServiceFunction
from curate.engine.ordering import OrderBy, OrderSpec, order_spec
from curate.workflow import Workflow


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
    stale_after_seconds: float | None = None,
) -> RunResult:
    """Claim queued rows of ``model`` and run ``processing_function(item_id, session)`` on each.

    A function that returns leaves the row ``completed_status`` (unless it set a final
    status itself); one that raises leaves it ``failed_status`` with the error text.
    ``status_enum`` is accepted for compatibility; the four statuses given are used.

    curate's one addition, ``stale_after_seconds``: on a table with ``updated_at``, rows
    left Processing longer than this (a crashed worker's) are put back to Queued by the
    rescuer. Without it such rows stay Processing until re-queued by hand.
    """
    from curate.runtime import get_runtime

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
    )
    config = RunConfig(
        batch_size=batch_size,
        concurrency=1,
        retry=NO_RETRY,
        stale_after_seconds=stale_after_seconds,
    )
    return await get_runtime().run(workflow, config)


def _seed_order(model: Any, order_by: OrderBy) -> OrderSpec:
    """The order as the seed's loop had it: what was given (``asc(Model.updated_at)``, a
    column, ...), else ``updated_at`` ascending where the table has it, else the primary
    key. An `OrderSpec`, not the expression: expressions compare as SQL, and the cache
    below needs a key that compares as a value."""
    table = table_of(model)
    default = "updated_at" if "updated_at" in table.c else table.primary_key.columns[0].key
    return order_spec(table, order_by, default)


@functools.lru_cache(maxsize=256)
def _seed_workflow(
    model: Any,
    statuses: Statuses,
    service: ServiceFunction,
    order_by: OrderSpec,
    columns: ColumnNames,
) -> Workflow:
    """One `Workflow` per distinct call, so its statements are built once."""
    table_name = getattr(model, "__tablename__", None) or getattr(model, "name", "items")
    return Workflow(
        f"{table_name}_{columns.status}".lower(),
        model=model,
        service=service,
        statuses=statuses,
        columns=columns,
        order_by=order_by,
    )
