"""Reads for the dashboard's pages: a workflow's items, a page at a time, and its
completions, failures and queue depth per time bucket (from ``curate_workflow_stats``).

Plain data in, plain dataclasses out, like `curate.operations`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from curate.db.own_tables import missing_table
from curate.errors import ConfigurationError
from curate.sql import items as items_sql
from curate.sql import stats as stats_sql
from curate.workflow import Workflow

ITEMS_PER_PAGE = 50
"""Rows per page of a workflow's item list."""

STATS_BUCKETS = 72
"""About how many buckets a chart has: over 6 hours, one per 5 minutes."""


@dataclass(frozen=True)
class ItemSummary:
    """One row of a workflow's item list; None where the table lacks the column."""

    id: Any
    status: str | None
    error: str | None  # the first line
    attempts: int | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ItemList:
    """One page of a workflow's item list, newest first."""

    items: list[ItemSummary]
    page: int  # from 1
    per_page: int
    has_next: bool


async def read_items(
    engine: AsyncEngine, workflow: Workflow, chosen: items_sql.ItemFilter, page: int = 1
) -> ItemList:
    """Page ``page`` (from 1) of ``workflow``'s rows that ``chosen`` selects (its ids
    converted, see `curate.operations.item_ids`): one statement, one row more than a page
    to know whether another follows."""
    if page < 1:
        raise ValueError(f"page must be >= 1, not {page}")
    params = {"curate_limit": ITEMS_PER_PAGE + 1, "curate_offset": (page - 1) * ITEMS_PER_PAGE}
    async with engine.connect() as connection:
        rows = (
            await connection.execute(items_sql.item_page(workflow.binding, chosen), params)
        ).all()
    items = [
        ItemSummary(row.id, _status_text(row.status), row.error, row.attempts, row.updated_at)
        for row in rows[:ITEMS_PER_PAGE]
    ]
    return ItemList(items, page, ITEMS_PER_PAGE, has_next=len(rows) > ITEMS_PER_PAGE)


def _status_text(status: Any) -> str | None:
    text: str | None = status.value if isinstance(status, enum.Enum) else status
    return text


@dataclass(frozen=True)
class StatsBucket:
    """One bucket of a workflow's chart, summed over every worker."""

    start: datetime
    completed: int
    failed: int
    retried: int
    queued: int | None  # the deepest queue sampled in the bucket; None: no worker sampled


@dataclass(frozen=True)
class StatsSeries:
    """A workflow's outcomes and queue depth over the last ``hours``, oldest bucket first;
    the last bucket is the current one, still filling."""

    workflow: str
    hours: int
    bucket_seconds: int
    buckets: list[StatsBucket]


def stats_bucket_seconds(hours: int) -> int:
    """Whole minutes, about `STATS_BUCKETS` of them over ``hours``."""
    return -(-hours * 60 // STATS_BUCKETS) * 60


async def read_stats(engine: AsyncEngine, workflow: Workflow, hours: int) -> StatsSeries:
    """``workflow``'s buckets over the last ``hours`` from ``curate_workflow_stats``.
    Raises `ConfigurationError` when the table is missing (no migration made it yet)."""
    missing = await missing_table(engine, stats_sql.TABLE)
    if missing is not None:
        raise ConfigurationError(f"no charts: {missing}; {missing.how_to_create}")
    step = stats_bucket_seconds(hours)
    params = {
        "curate_workflow": workflow.name,
        "curate_buckets": -(-hours * 3600 // step),
        "curate_step_seconds": step,
    }
    async with engine.connect() as connection:
        rows = (await connection.execute(stats_sql.SERIES, params)).all()
    buckets = [StatsBucket(r.start, r.completed, r.failed, r.retried, r.queued) for r in rows]
    return StatsSeries(workflow.name, hours, step, buckets)
