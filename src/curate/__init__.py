"""curate: status-driven background workflows on your own PostgreSQL tables.

The public surface is what this module exports; everything else is private to curate.
Each name is imported on first use, so a worker process loads only the modules it runs
(not the seed-compatible loop, dual status, periodic jobs or their SQL).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        Snooze,
        StatementTimeoutError,
    )
    from curate.logs import configure_logging, propagate_to_logging
    from curate.periodic import PeriodicJob, periodic
    from curate.runtime import Runtime, configure, get_runtime, reset_runtime
    from curate.settings import CurateSettings, WorkflowSettings
    from curate.workflow import Workflow, notify, queue

__version__ = "0.1.0"

_EXPORTS = {
    "curate.columns": ("ColumnNames", "ProcessingStatus", "workflow_columns", "workflow_mixin"),
    "curate.compat": ("run_job_loop",),
    "curate.curation": ("DualStatus",),
    "curate.engine.binding": ("Statuses",),
    "curate.engine.config": ("RetryPolicy",),
    "curate.engine.context": ("RunResult",),
    "curate.errors": (
        "ConfigurationError",
        "CurateError",
        "DatabaseUnavailableError",
        "ItemTimeoutError",
        "NonRetryableError",
        "Snooze",
        "StatementTimeoutError",
    ),
    "curate.logs": ("configure_logging", "propagate_to_logging"),
    "curate.periodic": ("PeriodicJob", "periodic"),
    "curate.runtime": ("Runtime", "configure", "get_runtime", "reset_runtime"),
    "curate.settings": ("CurateSettings", "WorkflowSettings"),
    "curate.workflow": ("Workflow", "notify", "queue"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and keep the name here."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'curate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


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
    "Snooze",
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
