"""`Workflow`: the declarative spec of one status-driven background process over one table.

From the spec come the columns (``<name>_status``, ``<name>_error``, …), the scheduler job
id (``process_pending_<name>s``), the settings (``<NAME>_SCHEDULER_*``) and the statements.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from curate.columns import ColumnNames, ProcessingStatus
from curate.engine.binding import OrderBy, Statuses, TableBinding
from curate.engine.config import RetryPolicy, RunConfig
from curate.engine.context import RunResult, ServiceFunction
from curate.engine.notifier import channel_for
from curate.errors import ConfigurationError
from curate.settings import WorkflowSettings
from curate.sql import NOTIFY, WorkflowStatements

if TYPE_CHECKING:
    from curate.runtime import Runtime

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Workflow:
    """A named workflow: which table, which service, how much at once, how to retry.

    Values given here are defaults; ``<NAME>_SCHEDULER_*`` environment variables override
    them (see `curate.settings.WorkflowSettings`).
    """

    def __init__(
        self,
        name: str,
        *,
        model: Any,
        service: ServiceFunction,
        status_enum: type[enum.Enum] = ProcessingStatus,
        statuses: Statuses | None = None,
        columns: ColumnNames | None = None,
        order_by: OrderBy = None,
        batch_size: int | None = None,
        interval_seconds: float | None = None,
        max_instances: int | None = None,
        concurrency: int | None = None,
        timeout_seconds: float | None = None,
        retry: RetryPolicy | None = None,
        lease_seconds: float | None = None,
        heartbeat_seconds: float | None = None,
        run_max_items: int | None = None,
        run_max_seconds: float | None = None,
        stale_after_seconds: float | None = None,
        rate_limit: float | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise ConfigurationError(
                f"workflow name {name!r} is invalid: use lower snake_case (e.g. sitemap_import)"
            )
        self.name = name
        self.model = model
        self.service = service
        self.statuses = statuses or Statuses.from_enum(status_enum)
        self.columns = columns or ColumnNames.for_prefix(name)
        self.order_by = order_by
        self.retry = retry or RetryPolicy()
        self._code_settings = {
            key: value
            for key, value in {
                "batch_size": batch_size,
                "interval_seconds": interval_seconds,
                "max_instances": max_instances,
                "concurrency": concurrency,
                "timeout_seconds": timeout_seconds,
                "lease_seconds": lease_seconds,
                "heartbeat_seconds": heartbeat_seconds,
                "run_max_items": run_max_items,
                "run_max_seconds": run_max_seconds,
                "stale_after_seconds": stale_after_seconds,
                "rate_limit": rate_limit,
                "max_attempts": retry.max_attempts if retry else None,
                "retry_base_seconds": retry.base_seconds if retry else None,
                "retry_max_seconds": retry.max_seconds if retry else None,
            }.items()
            if value is not None
        }

    def __repr__(self) -> str:
        return f"Workflow({self.name!r})"

    @property
    def job_id(self) -> str:
        """The scheduler job id and job function name: ``process_pending_<name>s``."""
        return f"process_pending_{self.name}s"

    @cached_property
    def binding(self) -> TableBinding:
        """The table and columns, checked on first use (a missing column raises here)."""
        return TableBinding.resolve(self.model, self.columns, self.statuses, self.order_by)

    @cached_property
    def statements(self) -> WorkflowStatements:
        return WorkflowStatements.build(self.binding)

    def load_settings(self) -> WorkflowSettings:
        """This workflow's settings: code values, overridden by ``<NAME>_SCHEDULER_*``."""
        return WorkflowSettings.load(self.name, **self._code_settings)

    def run_config(self, settings: WorkflowSettings) -> RunConfig:
        return RunConfig(
            batch_size=settings.batch_size,
            concurrency=settings.concurrency,
            timeout_seconds=settings.timeout_seconds,
            lease_seconds=settings.lease_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
            run_max_items=settings.run_max_items,
            run_max_seconds=settings.run_max_seconds,
            stale_after_seconds=settings.stale_after_seconds,
            rate_limit=settings.rate_limit,
            retry=replace(
                self.retry,
                max_attempts=settings.max_attempts,
                base_seconds=settings.retry_base_seconds,
                max_seconds=settings.retry_max_seconds,
            ),
        )

    async def run(self, runtime: Runtime | None = None) -> RunResult:
        """One run: claim and process queued items until drained or over budget."""
        from curate.runtime import get_runtime

        return await (runtime or get_runtime()).run(self)

    async def queue(self, session: AsyncSession, ids: Sequence[Any]) -> None:
        """Queue rows afresh in the caller's transaction (attempts reset, due now).

        This is the write behind the dual-status pattern: set the curation status and
        queue the row in one transaction, so both commit or neither does.
        """
        if ids:
            await session.execute(self.statements.queue, self.statements.queue_params(ids))
            await notify(session, self)


async def notify(session: AsyncSession, workflow: Workflow) -> None:
    """Wake the workers of ``workflow`` when the caller's transaction commits.

    `Workflow.queue` and the trigger of `curate.migrations.add_workflow_columns` do it
    already; call this after queueing rows some other way (raw SQL on a table without
    the trigger, a bulk load).
    """
    await session.execute(NOTIFY, {"curate_channel": channel_for(workflow.name)})
