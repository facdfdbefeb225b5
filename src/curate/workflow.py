"""`Workflow`: the declarative spec of one status-driven background process over one table.

From the spec come the columns (``<name>_status``, ``<name>_error``, …), the scheduler job
id (``process_pending_<name>s``), the settings (``<NAME>_SCHEDULER_*``) and the statements.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from curate.clock import clock
from curate.columns import ColumnNames, ProcessingStatus
from curate.engine.binding import ClaimFilter, LockKey, Statuses, TableBinding
from curate.engine.config import RetryPolicy, RunConfig
from curate.engine.context import RunResult, ServiceFunction
from curate.engine.hooks import ItemHook
from curate.engine.notifier import channel_for
from curate.engine.ordering import OrderBy
from curate.errors import ConfigurationError
from curate.settings import WorkflowSettings
from curate.sql import NOTIFY, WorkflowStatements
from curate.trace_context import current_traceparent

if TYPE_CHECKING:
    from curate.fan_in import Children
    from curate.runtime import Runtime

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Workflow:
    """A named workflow: which table, which service, how much at once, how to retry.

    Values given here are defaults; ``<NAME>_SCHEDULER_*`` environment variables override
    them (see `curate.settings.WorkflowSettings`). ``lock_key`` (a column name or an SQL
    expression over the table) makes rows with the same key run one at a time and in
    queue order, across all workers. ``item_hooks`` wrap this workflow's items inside the
    runtime's hooks (`curate.Runtime.add_item_hook`). ``outcomes="batched"`` writes the
    completions of many items in one statement, for services that need no transaction
    shared with their outcome (at-least-once; see `curate.engine.batched`).
    ``waits_for`` makes it a fan-in: its items are queued when their children are done
    (`curate.fan_in.Children`).
    """

    def __init__(
        self,
        name: str,
        *,
        model: Any,
        service: ServiceFunction,
        status_enum: type[enum.Enum] = ProcessingStatus,
        statuses: Statuses | None = None,
        cancelled_status: enum.Enum | None = None,
        columns: ColumnNames | None = None,
        order_by: OrderBy = None,
        lock_key: LockKey = None,
        where: ClaimFilter = None,
        item_hooks: Sequence[ItemHook] = (),
        outcomes: Literal["per_item", "batched"] = "per_item",
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
        max_snoozes: int | None = None,
        waits_for: Children | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise ConfigurationError(
                f"workflow name {name!r} is invalid: use lower snake_case (e.g. sitemap_import)"
            )
        self.name = name
        self.model = model
        self.service = service
        self.statuses = statuses or Statuses.from_enum(status_enum)
        if cancelled_status is not None:
            self.statuses = replace(self.statuses, cancelled=cancelled_status)
        self.columns = columns or ColumnNames.for_prefix(name)
        self.order_by = order_by
        self.lock_key = lock_key
        self.where = where
        self.item_hooks = tuple(item_hooks)
        self.waits_for = waits_for
        """The children its items wait for (a fan-in, `curate.fan_in`), if any."""
        if outcomes not in ("per_item", "batched"):
            raise ConfigurationError(
                f"workflow {name}: outcomes={outcomes!r} is invalid: use 'per_item' (the"
                " service's writes and Complete commit together) or 'batched'"
            )
        self.outcomes = outcomes
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
                "max_snoozes": max_snoozes,
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
        return TableBinding.resolve(
            self.model, self.columns, self.statuses, self.order_by, self.lock_key, self.where
        )

    @cached_property
    def statements(self) -> WorkflowStatements:
        return WorkflowStatements.build(self.binding)

    @cached_property
    def statements_recording_failures(self) -> WorkflowStatements:
        """`statements` whose writes of an attempt that did not complete also record it
        (attempt history, ``CURATE_ATTEMPT_HISTORY=failures``)."""
        return self.statements.with_history(completions=False)

    @cached_property
    def statements_recording_all(self) -> WorkflowStatements:
        """`statements` whose outcome writes all record the attempt (``=all``)."""
        return self.statements.with_history(completions=True)

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
            max_snoozes=settings.max_snoozes,
            batched_outcomes=self._batched_outcomes(),
            retry=replace(
                self.retry,
                max_attempts=settings.max_attempts,
                base_seconds=settings.retry_base_seconds,
                max_seconds=settings.retry_max_seconds,
            ),
        )

    def _batched_outcomes(self) -> bool:
        if self.outcomes == "batched" and not self.binding.fences_by_claim:
            raise ConfigurationError(
                f"workflow {self.name}: outcomes='batched' needs the columns"
                f" {self._column_name('attempts')!r} and"
                f" {self._column_name('claimed_by')!r}, to fence the"
                " batched write on each item's claim"
            )
        return self.outcomes == "batched"

    async def run(self, runtime: Runtime | None = None) -> RunResult:
        """One run: claim and process queued items until drained or over budget."""
        from curate.runtime import get_runtime

        return await (runtime or get_runtime()).run(self)

    async def queue(
        self,
        session: AsyncSession,
        ids: Sequence[Any],
        *,
        run_at: datetime | None = None,
        run_in: timedelta | float | None = None,
        priority: int | None = None,
    ) -> None:
        """Queue rows afresh in the caller's transaction (attempts reset).

        Due at once, at ``run_at`` (timezone-aware) or ``run_in`` (a timedelta or seconds)
        from now; ``priority`` (higher runs first; default: the row's current priority,
        0 for a new row). This is the write behind the dual-status pattern and behind
        stages: it commits with the caller's other writes, or not at all. Where the table
        has ``<name>_trace_context``, it stores the current span's ``traceparent`` there
        (`curate.trace_context`).
        """
        if not ids:
            return
        traced = self.binding.trace_context is not None
        params = self.statements.queue_params(
            ids,
            **self._schedule(run_at, run_in, priority),
            now=clock.now_override(),
            trace_context=current_traceparent() if traced else None,
        )
        await session.execute(self.statements.queue, params)
        await notify(session, self)

    def _column_name(self, field: str) -> str:
        """The name of one of the workflow's columns, or the name curate would give it."""
        name: str | None = getattr(self.columns, field)
        return name or getattr(ColumnNames.for_prefix(self.name), field)

    def _missing_column(self, field: str, what_items_cannot: str) -> ConfigurationError:
        return ConfigurationError(
            f"workflow {self.name}: table {self.binding.table.name!r} has no column"
            f" {self._column_name(field)!r}, so items cannot {what_items_cannot}; add it"
            " with curate.migrations.add_missing_workflow_columns"
        )

    def _schedule(
        self, run_at: datetime | None, run_in: timedelta | float | None, priority: int | None
    ) -> dict[str, Any]:
        """Check ``run_at``/``run_in``/``priority`` against the table; a clear error if not."""
        binding = self.binding
        if run_at is not None and run_in is not None:
            raise ConfigurationError("queue: pass run_at or run_in, not both")
        if run_at is not None and run_at.tzinfo is None:
            raise ConfigurationError(f"queue: run_at={run_at!r} needs a timezone (e.g. UTC)")
        if (run_at is not None or run_in is not None) and binding.run_after is None:
            raise self._missing_column("run_after", "be scheduled for later")
        if priority is not None and binding.priority is None:
            raise self._missing_column("priority", "have a priority")
        if isinstance(run_in, int | float):
            run_in = timedelta(seconds=run_in)
        return {"run_at": run_at, "run_in": run_in, "priority": priority}


async def queue(
    session: AsyncSession,
    workflow: Workflow,
    item_ids: Any,
    *,
    run_at: datetime | None = None,
    run_in: timedelta | float | None = None,
    priority: int | None = None,
) -> None:
    """Queue one item (or a list of them) for ``workflow`` in the caller's transaction.

    ``curate.queue(session, thumbnail, photo.id, run_in=60, priority=5)``: see
    `Workflow.queue`. Inside a service, with the session curate passed in, the item is
    handed to the next stage in the same transaction as this item's own outcome.
    """
    many = isinstance(item_ids, list | tuple | set | frozenset)
    ids = list(item_ids) if many else [item_ids]
    await workflow.queue(session, ids, run_at=run_at, run_in=run_in, priority=priority)


async def notify(session: AsyncSession, workflow: Workflow) -> None:
    """Wake the workers of ``workflow`` when the caller's transaction commits.

    `Workflow.queue` and the trigger of `curate.migrations.add_workflow_columns` do it
    already; call this after queueing rows some other way (raw SQL on a table without
    the trigger, a bulk load).
    """
    await session.execute(NOTIFY, {"curate_channel": channel_for(workflow.name)})
