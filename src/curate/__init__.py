"""curate: status-driven background workflows on your own PostgreSQL tables.

The public surface is what this module exports; everything else is private to curate.
"""

from curate.columns import ColumnNames, ProcessingStatus, workflow_columns, workflow_mixin
from curate.compat import run_job_loop
from curate.curation import DualStatus
from curate.engine.binding import Statuses
from curate.engine.config import RetryPolicy
from curate.engine.context import RunResult
from curate.errors import (
    ConfigurationError,
    CurateError,
    DatabaseUnavailableError,
    ItemTimeoutError,
    NonRetryableError,
    StatementTimeoutError,
)
from curate.logs import configure_logging, propagate_to_logging
from curate.periodic import PeriodicJob, periodic
from curate.runtime import Runtime, configure, get_runtime, reset_runtime
from curate.settings import CurateSettings, WorkflowSettings
from curate.workflow import Workflow, notify, queue

__version__ = "0.1.0"

__all__ = [
    "ColumnNames",
    "ConfigurationError",
    "CurateError",
    "CurateSettings",
    "DatabaseUnavailableError",
    "DualStatus",
    "ItemTimeoutError",
    "NonRetryableError",
    "PeriodicJob",
    "ProcessingStatus",
    "RetryPolicy",
    "RunResult",
    "Runtime",
    "StatementTimeoutError",
    "Statuses",
    "Workflow",
    "WorkflowSettings",
    "__version__",
    "configure",
    "configure_logging",
    "get_runtime",
    "notify",
    "periodic",
    "propagate_to_logging",
    "queue",
    "reset_runtime",
    "run_job_loop",
    "workflow_columns",
    "workflow_mixin",
]
