"""Helpers for an app's own tests: run its workflows to the end, look at their rows, move "now".

A test queues rows the way the app does, then ``await harness.run_pending()`` does what
the scheduler would do over minutes, at once and in the test's own task, so the test can
check the outcome right after. The pytest fixtures of `curate.pytest_plugin` hand out a
`WorkflowHarness` on a fresh database per test (``curate_harness``).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row

from curate.clock import clock
from curate.engine.config import RunConfig
from curate.engine.context import RunResult
from curate.runtime import Runtime
from curate.sql.inspect import rows_in_status, rows_in_status_params
from curate.workflow import Workflow

TemplateSetup = Callable[[str], Awaitable[None]]
"""Builds the app's schema in the template database, given its URL (``curate_template_setup``)."""


class NotDrainedError(AssertionError):
    """Work was still due after the harness's bound on runs (a pipeline that never ends),
    or a claim failed, so running on would not have drained it."""


@dataclass(frozen=True)
class FailedRow:
    """A row in the failed status, with the error text curate recorded."""

    id: Any
    error: str | None


class WorkflowHarness:
    """Runs workflows to completion inside a test and reports where their rows are.

    ``max_runs`` bounds the runs that claim something in one `drain` or `run_pending`
    call, so a pipeline that keeps queueing work fails the test instead of hanging it.
    """

    def __init__(self, runtime: Runtime, *, max_runs: int = 100) -> None:
        self.runtime = runtime
        self.max_runs = max_runs

    async def drain(self, workflow: Workflow) -> RunResult:
        """Run ``workflow`` until no queued row of it is due; what all the runs did."""
        results = await self._run_until_idle([self._with_config(workflow)])
        return results[workflow.name]

    async def run_pending(self, *workflows: Workflow) -> dict[str, RunResult]:
        """Run ``workflows`` (default: every workflow registered with the runtime) again and
        again until none has a due row, so work that one queues for another runs too."""
        chosen = (
            [self._with_config(workflow) for workflow in workflows]
            if workflows
            else list(self.runtime.registered.values())
        )
        if not chosen:
            raise ValueError(
                "no workflow is registered with the runtime: pass them, run_pending(a, b),"
                " or register them first (runtime.register(workflow))"
            )
        return await self._run_until_idle(chosen)

    async def queued(self, workflow: Workflow) -> list[Any]:
        """Ids of the rows Queued for ``workflow``, due or not, sorted."""
        return [row.id for row in await self._rows(workflow, workflow.binding.statuses.queued)]

    async def processing(self, workflow: Workflow) -> list[Any]:
        """Ids of the rows Processing for ``workflow``, sorted."""
        statuses = workflow.binding.statuses
        return [row.id for row in await self._rows(workflow, statuses.processing)]

    async def complete(self, workflow: Workflow) -> list[Any]:
        """Ids of the rows Complete for ``workflow``, sorted."""
        statuses = workflow.binding.statuses
        return [row.id for row in await self._rows(workflow, statuses.complete)]

    async def failed(self, workflow: Workflow) -> list[FailedRow]:
        """The rows in ``workflow``'s failed status, with their error text, by id."""
        rows = await self._rows(workflow, workflow.binding.statuses.failed)
        return [FailedRow(id=row.id, error=row.error) for row in rows]

    def freeze_time(self, at: datetime | None = None) -> datetime:
        """Stop "now" at ``at`` (timezone-aware; default: the current time) for every
        statement that asks whether a row is due; returns it. The fixture unfreezes it."""
        return clock.freeze(at)

    def advance_time(
        self,
        by: timedelta | float = 0.0,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> datetime:
        """Move "now" forward by ``by`` (a timedelta or seconds) plus the keyword amounts,
        freezing it at the current time first if it runs; returns the new "now"."""
        if clock.now_override() is None:
            clock.freeze()
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        return clock.advance(
            step + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        )

    def _with_config(self, workflow: Workflow) -> tuple[Workflow, RunConfig | None]:
        """The workflow with the config it was registered with, if any."""
        registered = self.runtime.registered.get(workflow.name)
        return (workflow, registered[1] if registered else None)

    async def _run_until_idle(
        self, workflows: Sequence[tuple[Workflow, RunConfig | None]]
    ) -> dict[str, RunResult]:
        results = {workflow.name: RunResult(workflow=workflow.name) for workflow, _ in workflows}
        runs = 0
        busy = True
        while busy:
            busy = False
            for workflow, config in workflows:
                one = await self.runtime.run(workflow, config)
                results[workflow.name].absorb(one)
                if one.errors:
                    raise NotDrainedError(
                        f"workflow {workflow.name}: the claim failed: {one.errors[-1]}"
                    )
                if not one.claimed:
                    continue
                busy = True
                runs += 1
                if runs > self.max_runs:
                    claimed = ", ".join(f"{r.workflow}: {r.claimed}" for r in results.values())
                    raise NotDrainedError(
                        f"rows still due after {self.max_runs} runs (rows claimed: {claimed});"
                        " the workflows keep queueing work for each other or themselves."
                        " If the test needs more runs, raise WorkflowHarness.max_runs"
                    )
        return results

    async def _rows(self, workflow: Workflow, status: enum.Enum) -> list[Row[Any]]:
        binding = workflow.binding
        engine = await self.runtime.database.engine()
        async with engine.connect() as connection:
            result = await connection.execute(
                rows_in_status(binding), rows_in_status_params(binding, status)
            )
            return list(result)


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    *,
    seconds: float = 20.0,
    poll_seconds: float = 0.02,
    what: str = "the condition",
) -> None:
    """Poll ``condition`` until it is true; raise `TimeoutError` at the deadline.

    For tests that wait on the database: no fixed sleep, a bound on how long to wait.
    """
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:g} s waiting for {what}")
        await asyncio.sleep(poll_seconds)
