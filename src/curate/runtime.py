"""The process's curate runtime: settings, database, per-workflow configs, running runs.

`configure(settings)` at start-up (the app's lifespan or the CLI) sets it; code that runs
without it (a ported seed scheduler) gets one built from the environment on first use.
`reset_runtime()` forgets it, for tests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from curate.clock import clock
from curate.db import Database
from curate.db.schema_searched import where_undefined
from curate.engine import attempt_history
from curate.engine.cancel import RunningServices, trim_requests
from curate.engine.config import RunConfig, StatementLimits
from curate.engine.context import RunContext, RunResult, ServiceFunction
from curate.engine.error_text import format_error
from curate.engine.hooks import ErrorHook, ItemHook, Observer
from curate.engine.loop import run_workflow
from curate.engine.notifier import Notifier
from curate.engine.pickup import Pickup
from curate.engine.repeated_errors import log_error, log_recovery
from curate.engine.rescuer import rescue_expired
from curate.engine.stats_recorder import StatsRecorder
from curate.errors import ConfigurationError
from curate.logs import logger
from curate.settings import CurateSettings, WorkflowSettings
from curate.sql import cancel as cancel_sql
from curate.workflow import Workflow

HISTORY_TRIM_SECONDS = 300.0
"""How often the attempt history is trimmed (`curate.engine.attempt_history.trim`): it
looks at the items with an attempt since twice as long ago."""


@dataclass
class WorkflowStats:
    """Totals of every run of one workflow in this process."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0
    busy_seconds: float = 0.0

    def add(self, result: RunResult) -> None:
        self.completed += result.completed
        self.failed += result.failed
        self.retried += result.retried
        self.dropped += result.dropped
        if result.claimed:
            self.busy_seconds += result.elapsed_seconds

    @property
    def items_per_second(self) -> float:
        done = self.completed + self.failed + self.retried
        return done / self.busy_seconds if self.busy_seconds else 0.0


class Runtime:
    """Everything curate keeps for the life of the process."""

    def __init__(
        self, settings: CurateSettings, workflow_overrides: dict[str, Any] | None = None
    ) -> None:
        """``workflow_overrides`` set `WorkflowSettings` fields for every workflow, over
        code and environment (the CLI's ``--concurrency``, for instance)."""
        self.settings = settings
        self.workflow_overrides = workflow_overrides or {}
        self.database = Database(settings)
        self.stats: dict[str, WorkflowStats] = {}
        self.stats_recorder = StatsRecorder()
        """The outcomes per minute not yet in the stats table: see `flush_stats`."""
        self.stopping = False
        self._workflow_settings: dict[str, WorkflowSettings] = {}
        self._active: set[asyncio.Task[Any]] = set()
        self._registered: dict[str, tuple[Workflow, RunConfig | None]] = {}
        self.pickup = Pickup(self._start_woken_run)
        self._woken_runs: set[asyncio.Task[None]] = set()
        self._stops: set[asyncio.Event] = set()
        """One per running run: set by `stop_runs` to end claiming at once."""
        self.item_hooks: list[ItemHook] = []
        """Wrap every item this process executes (tracing, metrics): see `add_item_hook`."""
        self.error_hooks: list[ErrorHook] = []
        """Hear of every failed item: see `add_error_hook`."""
        self.observers: list[Observer] = []
        self.services = RunningServices(settings.worker_id)
        """The services this process runs, where cancel requests find them."""
        self._history_trimmed_at = -HISTORY_TRIM_SECONDS
        """Hear of every claim and rescue: see `add_observer`."""

    def add_item_hook(self, hook: ItemHook) -> None:
        """Wrap every item from the next run on: ``hook(event)`` returns an async context
        manager entered before the service is called and left after the outcome is
        recorded, with ``event.outcome`` set (see `curate.engine.hooks`)."""
        self.item_hooks.append(hook)

    def add_error_hook(self, hook: ErrorHook) -> None:
        """Call ``await hook(event, error)`` for every item whose service fails, from the
        next run on, after the failure is recorded (``event.outcome`` says retried or
        failed); hooks run in the order they were added."""
        self.error_hooks.append(hook)

    def add_observer(self, observer: Observer) -> None:
        """Tell ``observer`` of every claim and rescue from now on (the metrics use it)."""
        self.observers.append(observer)

    def workflow_settings(self, workflow: Workflow) -> WorkflowSettings:
        """The workflow's settings, read and validated once, then cached."""
        if workflow.name not in self._workflow_settings:
            loaded = workflow.load_settings()
            if self.workflow_overrides:
                loaded = loaded.model_validate({**loaded.model_dump(), **self.workflow_overrides})
            self._workflow_settings[workflow.name] = loaded
        return self._workflow_settings[workflow.name]

    def register(self, workflow: Workflow, config: RunConfig | None = None) -> None:
        """Make ``workflow`` known to this process, so the rescuer looks after its rows.

        Says at once when a crash could leave its rows stuck (no lease columns).
        """
        if workflow.name in self._registered:
            return
        self._registered[workflow.name] = (workflow, config)
        resolved = config or workflow.run_config(self.workflow_settings(workflow))
        binding = workflow.binding
        if binding.lease_until is None and (
            binding.updated_at is None or resolved.stale_after_seconds is None
        ):
            how = (
                "set stale_after_seconds to rescue them by updated_at"
                if binding.updated_at is not None
                else "add the lease columns (curate.migrations.add_workflow_columns)"
            )
            logger.warning(
                "workflow {}: table {} has no lease column, so rows left Processing by a"
                " crashed worker stay there until re-queued by hand; {}",
                workflow.name,
                binding.table.name,
                how,
            )

    @property
    def registered(self) -> dict[str, tuple[Workflow, RunConfig | None]]:
        """The workflows known to this process by name, each with the config it runs with
        (None: from its settings); a copy, for `curate.testing` to run them all."""
        return dict(self._registered)

    async def context(
        self,
        workflow: Workflow,
        config: RunConfig | None = None,
        service: ServiceFunction | None = None,
    ) -> RunContext:
        """What a run (or the rescuer) of ``workflow`` needs, on the running loop's engine;
        ``service`` stands in for the workflow's own for this run."""
        engine = await self.database.engine()
        return RunContext(
            name=workflow.name,
            binding=workflow.binding,
            statements=await attempt_history.statements_for(workflow, engine, self.settings),
            config=config or workflow.run_config(self.workflow_settings(workflow)),
            service=service or workflow.service,
            sessionmaker=await self.database.sessionmaker(),
            worker_id=self.settings.worker_id,
            limits=StatementLimits(
                self.settings.lock_timeout_seconds, self.settings.statement_timeout_seconds
            ),
            item_hooks=(*self.item_hooks, *workflow.item_hooks),
            error_hooks=tuple(self.error_hooks),
            observers=tuple(self.observers),
            services=self.services,
            tally=self.stats_recorder.count,
        )

    async def run(
        self,
        workflow: Workflow,
        config: RunConfig | None = None,
        service: ServiceFunction | None = None,
    ) -> RunResult:
        """One run of ``workflow``; shutdown waits for it (see `stop_runs`).

        ``service`` runs the items instead of the workflow's own (the seed entry passes the
        bound method it was called with, without a workflow per service object).

        A wake-up (NOTIFY) that arrives while the run is going makes it claim again
        before it returns, so no queued row waits for the next poll.
        """
        self.register(workflow, config)
        ctx = await self.context(workflow, config, service)
        task = asyncio.current_task()
        stop = asyncio.Event()
        if self.stopping:
            stop.set()
        self._stops.add(stop)
        if task is not None:
            self._active.add(task)
        result = RunResult(workflow=workflow.name)
        try:
            with self.pickup.running(workflow.name):
                while True:
                    self.pickup.take_wake(workflow.name)
                    one_pass = await run_workflow(ctx, stop)
                    self.stats.setdefault(workflow.name, WorkflowStats()).add(one_pass)
                    result.absorb(one_pass)
                    # Leaving the loop and the `running` block has no await in between:
                    # a wake-up either lands here (claim again) or starts a new run.
                    if not self.pickup.take_wake(workflow.name) or stop.is_set():
                        break
            # Still an active run: a shutdown waits for this query instead of cutting it.
            await self._wake_when_due(workflow, ctx)
        finally:
            self._stops.discard(stop)
            if task is not None:
                self._active.discard(task)
        return result

    def _start_woken_run(self, name: str) -> None:
        """A wake-up for a workflow that is not running: start a run now."""
        registered = self._registered.get(name)
        if registered is None or self.stopping:
            return
        workflow, config = registered
        self._woken_runs.add(asyncio.create_task(self._woken_run(workflow, config)))

    async def _woken_run(self, workflow: Workflow, config: RunConfig | None) -> None:
        try:
            await self.run(workflow, config)
        except Exception as exc:  # the next poll retries; the app must not crash
            logger.bind(workflow=workflow.name).error("woken run failed: {}", format_error(exc))
        finally:
            self._woken_runs.discard(asyncio.current_task())

    async def _wake_when_due(self, workflow: Workflow, ctx: RunContext) -> None:
        """If a queued row becomes due before the next poll, wake up for it then."""
        statement = ctx.statements.earliest_due()
        if statement is None or self.stopping or not self.pickup.active:
            return
        try:
            async with ctx.own_transaction() as session:
                wait = await session.scalar(
                    statement, ctx.statements.earliest_due_params(clock.now_override())
                )
        except Exception as exc:
            logger.debug("could not look for rows due later: {}", format_error(exc))
            return
        interval = self.workflow_settings(workflow).interval_seconds
        if wait is None or wait.total_seconds() >= interval:
            return
        self.pickup.wake_later(workflow.name, wait.total_seconds())

    def begin_pickup(self) -> None:
        """Listen for NOTIFY on every registered workflow's channel (instant pick-up); off,
        said once, where LISTEN has no session to run in (`Database.can_listen`)."""
        if not self.database.can_listen:
            logger.warning(
                "instant pick-up is off: LISTEN needs a session of its own, which a pooler in"
                " transaction mode (CURATE_DATABASE_POOLING=transaction) does not give; set"
                " CURATE_LISTEN_DATABASE_URL to a direct connection to turn it on. Workflows"
                " still start at every poll (their interval)"
            )
            return
        self.pickup.listen(
            self.database.asyncpg_arguments,
            list(self._registered),
            {cancel_sql.CHANNEL: self.services.on_notification},
        )

    @property
    def notifier(self) -> Notifier | None:
        """The LISTEN side of instant pick-up, while it runs."""
        return self.pickup.notifier

    async def stop_pickup(self) -> None:
        """Stop listening and forget pending wake-ups (shutdown)."""
        await self.pickup.stop()

    async def rescue(self) -> int:
        """Rescue the expired rows of every registered workflow; how many were moved.

        Errors are logged per workflow; the next interval tries again.
        """
        moved = 0
        engine = await self.database.engine()
        for workflow, config in list(self._registered.values()):
            try:
                rescued = await rescue_expired(await self.context(workflow, config))
            except Exception as exc:
                said = format_error(exc) + await where_undefined(engine, exc)
                line = f"rescue failed, the next one retries: {said}"
                log_error(engine, workflow.name, "rescue", line)
                continue
            log_recovery(engine, workflow.name, "rescue")
            moved += len(rescued or ())
        await self._trim_history(engine)
        return moved

    async def _trim_history(self, engine: AsyncEngine) -> None:
        """Bound the attempt history (one worker at a time, the others skip) and drop old
        cancel requests, every `HISTORY_TRIM_SECONDS` at most (the rescuer's job runs it)."""
        now = time.monotonic()
        if now - self._history_trimmed_at < HISTORY_TRIM_SECONDS:
            return
        self._history_trimmed_at = now
        try:
            since = timedelta(seconds=2 * HISTORY_TRIM_SECONDS)
            deleted = await attempt_history.trim(engine, self.settings, since)
            await trim_requests(engine)
        except Exception as exc:
            said = format_error(exc)
            log_error(engine, "*", "history trim", f"trimming the attempt history failed: {said}")
            return
        log_recovery(engine, "*", "history trim")
        if deleted:
            logger.debug("trimmed {} attempt(s) from the history", deleted)

    async def flush_stats(self) -> None:
        """Add this process's outcomes per minute and a sample of each registered
        workflow's queue to the stats table (the dashboard's charts); the shared
        scheduler's job and its shutdown call it. Never raises."""
        workflows = [workflow for workflow, _ in self._registered.values()]
        await self.stats_recorder.flush(
            self.database, workflows, self.settings.stats_retention_days
        )

    async def close(self) -> None:
        """Close connections and let go of the embedded server (app shutdown)."""
        await self.database.close()

    def stop_claiming(self) -> None:
        """Let no run claim again, from now on (the first, synchronous step of a shutdown)."""
        self.stopping = True
        for stop in self._stops:
            stop.set()

    async def stop_runs(self, grace_seconds: float) -> bool:
        """Stop claiming, let running runs finish, cancel what is left after the grace period.

        Cancelled items are recorded as retries (back to Queued), not as errors. Returns
        True if every run finished within the grace period.
        """
        self.stop_claiming()
        running = [task for task in self._active if not task.done()]
        if not running:
            return True
        logger.info("waiting up to {} s for {} running run(s)", grace_seconds, len(running))
        _, pending = await asyncio.wait(running, timeout=grace_seconds)
        if not pending:
            return True
        logger.warning(
            "{} run(s) still busy after {} s; cancelling them", len(pending), grace_seconds
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return False


_runtime: Runtime | None = None


def configure(
    settings: CurateSettings | None = None, workflow_overrides: dict[str, Any] | None = None
) -> Runtime:
    """Set the process's runtime from ``settings`` (default: from the environment); with
    ``CURATE_TRACING``, traced (`curate.contrib.tracing`)."""
    global _runtime
    _runtime = Runtime(settings if settings is not None else CurateSettings(), workflow_overrides)
    if _runtime.settings.tracing:
        _trace(_runtime)
    return _runtime


def _trace(runtime: Runtime) -> None:
    try:
        from curate.contrib.tracing import instrument  # the otel extra: only when asked
    except ImportError as missing:
        raise ConfigurationError(
            f"CURATE_TRACING=true needs OpenTelemetry ({missing}): pip install"
            " 'curate-workflows[otel]', or set CURATE_TRACING=false"
        ) from None
    instrument(runtime)


def get_runtime() -> Runtime:
    """The configured runtime, configured from the environment on first use."""
    return _runtime if _runtime is not None else configure()


def reset_runtime() -> None:
    """Forget the runtime (tests)."""
    global _runtime
    _runtime = None
