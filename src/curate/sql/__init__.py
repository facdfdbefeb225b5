"""Every statement curate runs, by area: one module per area, all SQL in this package.

- `curate.sql.workflow`: the statements of one workflow over its table (claim, outcomes,
  queue), gathered in `WorkflowStatements`, with its pieces in `curate.sql.expressions`
  (shared), `curate.sql.leases` (heartbeat, rescue) and `curate.sql.reports` (status,
  error groups, requeue).
- `curate.sql.periodic`: the table of periodic jobs' runs (claim a time, finish).
- `curate.sql.controls`: curate's table of per-workflow controls (pause, rate-limit
  buckets).
- `curate.sql.stats`: curate's table of outcomes per workflow and minute (the dashboard's
  charts); `curate.sql.items`: the dashboard's list of a workflow's rows.
- `curate.sql.own_tables`: the DDL of those two tables of curate's own (for migrations,
  ``curate db upgrade`` and the test fixtures) and the look-up of whether one exists.
- `curate.sql.inspect`: read-only look-ups for tests (the rows of a workflow in a status).
- `curate.sql.curation`: the dual-status helper's write (a curation value on chosen rows).

The names most callers need are re-exported here.
"""

from curate.sql.reports import RequeueSelection
from curate.sql.workflow import (
    NOTIFY,
    STATUS_INDEXED,
    TABLE_COLUMNS,
    WorkflowStatements,
    status_indexed_params,
    table_columns_params,
)

__all__ = [
    "NOTIFY",
    "STATUS_INDEXED",
    "TABLE_COLUMNS",
    "RequeueSelection",
    "WorkflowStatements",
    "status_indexed_params",
    "table_columns_params",
]
