"""Every statement curate runs, by area: one module per area, all SQL in this package.

- `curate.sql.workflow`: the statements of one workflow over its table (claim, outcomes,
  rescue, status, requeue).

The names most callers need are re-exported here.
"""

from curate.sql.workflow import (
    NOTIFY,
    TABLE_COLUMNS,
    RequeueSelection,
    WorkflowStatements,
    table_columns_params,
)

__all__ = [
    "NOTIFY",
    "TABLE_COLUMNS",
    "RequeueSelection",
    "WorkflowStatements",
    "table_columns_params",
]
