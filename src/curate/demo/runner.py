"""`run_demo`: the whole pipeline in one process, from an empty database to a summary."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass

from curate import CurateSettings, ProcessingStatus
from curate.demo.pipeline import (
    WORKFLOWS,
    StatusCounts,
    is_drained,
    running_demo,
    status_counts,
)
from curate.demo.site import DEFAULT_DOMAINS, DemoSite
from curate.logs import logger
from curate.runtime import WorkflowStats
from curate.testing import wait_until


@dataclass(frozen=True)
class WorkflowSummary:
    """One workflow's outcome: rows by final status (database), retries and speed (this run)."""

    name: str
    complete: int
    error: int
    retried: int
    items_per_second: float


@dataclass(frozen=True)
class DemoSummary:
    """What `run_demo` prints and returns."""

    domains: int
    seconds: float
    workflows: tuple[WorkflowSummary, ...]

    def render(self) -> str:
        header = f"{'workflow':<20}{'complete':>10}{'error':>8}{'retried':>9}{'items/s':>10}"
        lines = [
            f"curate demo: {self.domains} domains, pipeline drained in {self.seconds:.1f} s",
            header,
            "-" * len(header),
        ]
        lines += [
            f"{w.name:<20}{w.complete:>10}{w.error:>8}{w.retried:>9}{w.items_per_second:>10.1f}"
            for w in self.workflows
        ]
        return "\n".join(lines)


async def run_demo(
    settings: CurateSettings,
    *,
    domains: int = DEFAULT_DOMAINS,
    keep_running: bool = False,
    drain_timeout_seconds: float = 120.0,
) -> DemoSummary:
    """Seed ``domains`` domains, run the three workflows until drained, print a summary.

    The demo's tables are emptied and seeded afresh at every start. With ``keep_running``
    the site and the scheduler keep serving after the summary, until SIGINT or SIGTERM.
    A pipeline that does not drain within ``drain_timeout_seconds`` raises `TimeoutError`.
    """
    site = DemoSite(domains=domains)
    async with running_demo(settings, site) as runtime:
        started = time.monotonic()
        counts: StatusCounts = {}

        async def drained() -> bool:
            nonlocal counts
            counts = await status_counts(runtime)
            return is_drained(counts)

        await wait_until(
            drained, seconds=drain_timeout_seconds, poll_seconds=0.2, what="the pipeline to drain"
        )
        summary = _summarize(site, time.monotonic() - started, counts, runtime.stats)
        print(summary.render(), flush=True)
        if keep_running:
            logger.info("still serving; Ctrl-C to stop")
            await _until_stopped()
    return summary


def _summarize(
    site: DemoSite, seconds: float, counts: StatusCounts, stats: dict[str, WorkflowStats]
) -> DemoSummary:
    rows = []
    for workflow in WORKFLOWS:
        by_status = counts.get(workflow.name, {})
        run_stats = stats.get(workflow.name, WorkflowStats())
        rows.append(
            WorkflowSummary(
                name=workflow.name,
                complete=by_status.get(ProcessingStatus.Complete.value, 0),
                error=by_status.get(ProcessingStatus.Error.value, 0),
                retried=run_stats.retried,
                items_per_second=run_stats.items_per_second,
            )
        )
    return DemoSummary(domains=site.domains, seconds=seconds, workflows=tuple(rows))


async def _until_stopped() -> None:
    """Wait for SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
