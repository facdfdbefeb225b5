"""The statements of ``curate_workflow_stats``: each workflow's outcomes per minute, summed
over every worker, and its queue depth as the workers sampled it (the dashboard's charts).

Each worker adds its own counts with an upsert that sums, so any number of processes and
hosts write the same minute's row without coordinating; the writers also delete the rows
past the retention. The table comes from a migration (`curate.sql.own_tables`); the
statements find it on the search_path. Parameters are named ``curate_*``; each statement's
docstring lists them.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

TABLE = "curate_workflow_stats"


def create_table(qualified: str) -> TextClause:
    """The table as ``qualified`` names it (``"schema".curate_workflow_stats``).
    ``queued``: rows Queued at the minute's last sample; NULL: no worker sampled it."""
    return text(
        f"CREATE TABLE IF NOT EXISTS {qualified} ("
        " workflow text NOT NULL,"
        " minute timestamptz NOT NULL,"
        " completed bigint NOT NULL DEFAULT 0,"
        " failed bigint NOT NULL DEFAULT 0,"
        " retried bigint NOT NULL DEFAULT 0,"
        " queued bigint,"
        " PRIMARY KEY (workflow, minute))"
    )


ADD = text(
    f"INSERT INTO {TABLE} AS s (workflow, minute, completed, failed, retried, queued)"
    " SELECT * FROM unnest(CAST(:curate_workflows AS text[]),"
    " CAST(:curate_minutes AS timestamptz[]), CAST(:curate_completed AS bigint[]),"
    " CAST(:curate_failed AS bigint[]), CAST(:curate_retried AS bigint[]),"
    " CAST(:curate_queued AS bigint[]))"
    " ON CONFLICT (workflow, minute) DO UPDATE SET"
    " completed = s.completed + excluded.completed,"
    " failed = s.failed + excluded.failed,"
    " retried = s.retried + excluded.retried,"
    " queued = coalesce(excluded.queued, s.queued)"
)
"""Add one worker's counts to the rows of (workflow, minute), creating those missing; a
``queued`` sample replaces the minute's, NULL keeps it. Params: the parallel arrays
``curate_workflows``, ``curate_minutes``, ``curate_completed``, ``curate_failed``,
``curate_retried``, ``curate_queued``, sorted by (workflow, minute) so that concurrent
writers lock shared rows in the same order."""

SAMPLED = text(
    f"SELECT workflow FROM {TABLE}"
    " WHERE workflow = ANY(CAST(:curate_workflows AS text[]))"
    " AND minute = :curate_minute AND queued IS NOT NULL"
)
"""Which of the workflows some worker sampled the queue of in ``curate_minute`` already:
the others sample it, so the queues are counted about once a minute, however many workers
there are. Params: ``curate_workflows``, ``curate_minute``."""

PRUNE = text(
    f"DELETE FROM {TABLE}"
    " WHERE workflow = ANY(CAST(:curate_workflows AS text[]))"
    " AND minute < now() - CAST(:curate_retention AS interval)"
)
"""Delete the workflows' rows older than ``curate_retention``; the primary key's index
finds them. Params: ``curate_workflows``, ``curate_retention``."""

# Buckets end at the next multiple of the step since the epoch, so they stay put from one
# read to the next; the last one is the current, partial, bucket.
_STEP = "CAST(:curate_step_seconds AS integer)"
_BUCKETS = (
    "SELECT to_timestamp((ceil(extract(epoch FROM now()) / "
    f"{_STEP}) - CAST(:curate_buckets AS integer) + n) * {_STEP}) AS start"
    " FROM generate_series(0, CAST(:curate_buckets AS integer) - 1) AS n"
)

SERIES = text(
    f"WITH bucket AS ({_BUCKETS})"
    " SELECT bucket.start, CAST(coalesce(sum(s.completed), 0) AS bigint) AS completed,"
    " CAST(coalesce(sum(s.failed), 0) AS bigint) AS failed,"
    " CAST(coalesce(sum(s.retried), 0) AS bigint) AS retried,"
    " max(s.queued) AS queued"
    f" FROM bucket LEFT JOIN {TABLE} AS s ON s.workflow = :curate_workflow"
    " AND s.minute >= bucket.start"
    f" AND s.minute < bucket.start + make_interval(secs => {_STEP})"
    " GROUP BY bucket.start ORDER BY bucket.start"
)
"""One workflow's ``curate_buckets`` most recent buckets of ``curate_step_seconds``, oldest
first: ``start``, the sums of ``completed``, ``failed`` and ``retried``, and ``queued``,
the highest sample (NULL: none). Params: ``curate_workflow``, ``curate_buckets``,
``curate_step_seconds``."""
