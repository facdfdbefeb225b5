"""This process's outcomes per workflow and minute, added to ``curate_workflow_stats`` in
batches: the dashboard's charts hold across worker processes and hosts.

Each outcome is counted in memory as its item finishes (`StatsRecorder.count`, which the
run calls through its context's ``tally``), in the minute it finished: an item that runs
for hours does not hold back the counts of the others. `StatsRecorder.flush`, a job of the
shared scheduler every ``CURATE_STATS_INTERVAL_SECONDS`` and a step of the shutdown, adds
the counts in one upsert that sums with the other workers', samples each queue's depth
(unless a worker did this minute), and deletes rows past the retention: a few statements
per interval, none per item. Without the table (no migration made it yet) the counts are
dropped, with one warning: runs never depend on it. A flush that fails keeps its counts for
the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from curate.db import Database
from curate.db.own_tables import missing_table
from curate.engine.error_text import format_error
from curate.engine.repeated_errors import log_error, log_recovery
from curate.logs import logger
from curate.sql import stats as sql
from curate.workflow import Workflow

_TASK = "stats"

Counts = list[int]
"""completed, failed, retried."""

_CHARTED = {"completed": 0, "failed": 1, "retried": 2}
"""The outcomes counted, by their place in `Counts`."""


class StatsRecorder:
    """Counts per (workflow, minute) not yet in the table."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, datetime], Counts] = {}
        self._flushing = asyncio.Lock()  # the job and the shutdown's flush, one at a time

    def count(
        self, workflow: str, outcome: str, items: int = 1, at: datetime | None = None
    ) -> None:
        """Count ``items`` of ``workflow`` that ended ``outcome`` (a `RunResult` counter:
        ``completed``, ``failed``, ``retried``; others are not charted) in the minute of
        ``at`` (default: now)."""
        column = _CHARTED.get(outcome)
        if column is None or items <= 0:
            return
        minute = (at or datetime.now(UTC)).replace(second=0, microsecond=0)
        counts = [0, 0, 0]
        counts[column] = items
        self._count(workflow, minute, counts)

    def _count(self, workflow: str, minute: datetime, counts: Counts) -> None:
        held = self._pending.setdefault((workflow, minute), [0, 0, 0])
        for index, count in enumerate(counts):
            held[index] += count

    async def flush(
        self, database: Database, workflows: Sequence[Workflow], retention_days: float
    ) -> None:
        """Add the pending counts and a queue sample of each of ``workflows`` to the table,
        and delete their rows older than ``retention_days``. Never raises: a failure is logged
        (once while it repeats) and the counts wait for the next flush."""
        async with self._flushing:
            pending, self._pending = self._pending, {}
            if not pending and not workflows:
                return
            engine = None
            try:
                engine = await database.engine()
                missing = await missing_table(engine, sql.TABLE)
                if missing is not None:
                    if missing.first_look:
                        logger.warning(
                            "{}: the dashboard's charts stay empty until it does; {}",
                            missing,
                            missing.how_to_create,
                        )
                    return
                await _write(engine, pending, workflows, timedelta(days=retention_days))
            except Exception as exc:
                for (workflow, minute), counts in pending.items():
                    self._count(workflow, minute, counts)
                line = f"could not write {sql.TABLE}, the next flush retries: {format_error(exc)}"
                if engine is None:
                    logger.error("{}", line)
                else:
                    log_error(engine, _TASK, _TASK, line)
                return
            log_recovery(engine, _TASK, _TASK)


async def _write(
    engine: AsyncEngine,
    pending: dict[tuple[str, datetime], Counts],
    workflows: Sequence[Workflow],
    retention: timedelta,
) -> None:
    """One transaction: the queue samples this minute lacks, the upsert, the pruning."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    names = [workflow.name for workflow in workflows]
    rows: dict[tuple[str, datetime], list[int | None]] = {
        key: [*counts, None] for key, counts in pending.items()
    }
    async with engine.begin() as connection:
        sampled = set(
            await connection.scalars(sql.SAMPLED, {"curate_workflows": names, "curate_minute": now})
        )
        for workflow in workflows:
            if workflow.name not in sampled:
                depth = (await connection.execute(workflow.statements.queue_depth)).one()
                rows.setdefault((workflow.name, now), [0, 0, 0, None])[3] = depth.queued
        keys = sorted(rows)
        if keys:
            await connection.execute(
                sql.ADD,
                {
                    "curate_workflows": [workflow for workflow, _ in keys],
                    "curate_minutes": [minute for _, minute in keys],
                    "curate_completed": [rows[key][0] for key in keys],
                    "curate_failed": [rows[key][1] for key in keys],
                    "curate_retried": [rows[key][2] for key in keys],
                    "curate_queued": [rows[key][3] for key in keys],
                },
            )
        if names:
            await connection.execute(
                sql.PRUNE, {"curate_workflows": names, "curate_retention": retention}
            )
