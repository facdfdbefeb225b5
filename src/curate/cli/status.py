"""`curate status`: how each workflow's queue stands, as a table for people or JSON for tools.

Exit 1 when any workflow has rows in its failed status or rows Processing past their
lease, so a cron job or a health check can alert on the exit code alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import curate
from curate.cli.common import (
    EXIT_FAILURES,
    EXIT_OK,
    app_option,
    app_workflows,
    database,
    load_settings,
    rows,
    run,
    safe_url,
    workflow_option,
)
from curate.workflow import Workflow

JSON_VERSION = 1
"""Bumped when a field of the JSON output changes meaning or goes away (additions keep it)."""

THROUGHPUT_WINDOW = timedelta(minutes=5)
ERROR_GROUPS = 5
"""How many error messages are shown per workflow, largest groups first."""


@dataclass(frozen=True)
class ErrorGroup:
    """Failed rows whose errors' first lines differ only in ids and numbers."""

    message: str  # the first line, with UUIDs as <uuid> and numbers as N
    rows: int
    last_seen: datetime | None
    example: str  # one of the real first lines


@dataclass(frozen=True)
class WorkflowStatus:
    """One workflow's queue at one instant; None where the table lacks the column."""

    name: str
    table: str
    counts: dict[str, int]  # queued, processing, complete, error, other
    oldest_queued_seconds: float | None
    expired_leases: int | None
    throughput_per_minute: float | None
    errors: list[ErrorGroup]

    @property
    def failures_found(self) -> bool:
        return self.counts["error"] > 0 or bool(self.expired_leases)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "table": self.table,
            "counts": self.counts,
            "oldest_queued_seconds": self.oldest_queued_seconds,
            "expired_leases": self.expired_leases,
            "throughput_per_minute": self.throughput_per_minute,
            "errors": [
                {
                    "message": group.message,
                    "rows": group.rows,
                    "last_seen": _iso(group.last_seen),
                    "example": group.example,
                }
                for group in self.errors
            ],
            "failures_found": self.failures_found,
        }


@dataclass(frozen=True)
class StatusReport:
    """Every selected workflow, read in one snapshot at the database's time ``at``."""

    at: datetime
    workflows: list[WorkflowStatus]

    @property
    def failures_found(self) -> bool:
        return any(w.failures_found for w in self.workflows)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILURES if self.failures_found else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "generated_at": _iso(self.at),
            "throughput_window_seconds": int(THROUGHPUT_WINDOW.total_seconds()),
            "failures_found": self.failures_found,
            "workflows": [w.as_json() for w in self.workflows],
        }


async def read_status(engine: AsyncEngine, workflows: Sequence[Workflow]) -> StatusReport:
    """Read every workflow's figures in one repeatable-read snapshot."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ")
        at = (await connection.execute(select(func.now()))).scalar_one()
        found = [await _workflow_status(connection, workflow) for workflow in workflows]
    return StatusReport(at=at, workflows=found)


async def _workflow_status(connection: AsyncConnection, workflow: Workflow) -> WorkflowStatus:
    statements = workflow.statements
    summary = (
        await connection.execute(
            statements.status_summary, statements.status_params(THROUGHPUT_WINDOW)
        )
    ).one()
    groups = await connection.execute(
        statements.error_groups, statements.error_groups_params(ERROR_GROUPS)
    )
    minutes = THROUGHPUT_WINDOW.total_seconds() / 60
    return WorkflowStatus(
        name=workflow.name,
        table=workflow.binding.table.name,
        counts={
            "queued": summary.queued,
            "processing": summary.processing,
            "complete": summary.complete,
            "error": summary.failed,
            "other": summary.other,
        },
        oldest_queued_seconds=_rounded(summary.oldest_queued_seconds, 1),
        expired_leases=summary.expired_leases,
        throughput_per_minute=_rounded(
            None if summary.completed_recently is None else summary.completed_recently / minutes, 2
        ),
        errors=[ErrorGroup(r.message, r.rows, r.last_seen, r.example) for r in groups],
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- the table -------------------------------------------------------------------------------


def age(seconds: float) -> str:
    """A duration the way people read it: 45s, 3m 12s, 2h 5m, 3d 4h."""
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    for big, big_unit, small, small_unit in (
        (days, "d", hours, "h"),
        (hours, "h", minutes, "m"),
        (minutes, "m", secs, "s"),
    ):
        if big:
            return f"{big}{big_unit} {small}{small_unit}" if small else f"{big}{big_unit}"
    return f"{secs}s"


def render(report: StatusReport, where: str) -> Group:
    """Where and when, the overview, one table of error groups per failing workflow, and a
    verdict; fits 80 columns."""
    overview = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    show_other = any(w.counts["other"] for w in report.workflows)
    overview.add_column("Workflow", no_wrap=True)
    for heading in ("Queued", "Processing", "Complete", "Error", *(["Other"] * show_other)):
        overview.add_column(heading, justify="right")
    overview.add_column("Oldest\nqueued", justify="right")
    overview.add_column("Expired\nleases", justify="right")
    overview.add_column("Done/\nmin", justify="right")
    parts: list[Any] = [
        Text(f"{where}, {report.at:%Y-%m-%d %H:%M:%S %Z}"),
        overview,
    ]
    for w in report.workflows:
        counts = [str(w.counts[k]) for k in ("queued", "processing", "complete")]
        error = Text(str(w.counts["error"]), style="bold red" if w.counts["error"] else "")
        other = [str(w.counts["other"])] if show_other else []
        if w.throughput_per_minute is None:
            oldest, throughput = "n/a", "n/a"
        else:
            oldest = "-" if w.oldest_queued_seconds is None else age(w.oldest_queued_seconds)
            throughput = f"{w.throughput_per_minute:g}"
        expired = Text(
            "n/a" if w.expired_leases is None else str(w.expired_leases),
            style="bold red" if w.expired_leases else "",
        )
        overview.add_row(w.name, *counts, error, *other, oldest, expired, throughput)
    window = age(THROUGHPUT_WINDOW.total_seconds())
    parts.append(Text(f"Done/min: rows completed per minute over the last {window}.\n"))
    parts.extend(_error_table(w, report.at) for w in report.workflows if w.errors)
    parts.append(Text(_verdict(report), style="bold red" if report.failures_found else "green"))
    return Group(*parts)


def _error_table(status: WorkflowStatus, at: datetime) -> Table:
    table = Table(
        title=f"{status.name}: rows in Error by message",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("Rows", justify="right")
    table.add_column("Last seen", justify="right")
    table.add_column("Message", overflow="fold")
    for group in status.errors:
        seen = "n/a"
        if group.last_seen is not None:
            seen = f"{age((at - group.last_seen).total_seconds())} ago"
        # One row: its real text reads better than the masked pattern.
        table.add_row(str(group.rows), seen, group.example if group.rows == 1 else group.message)
    return table


def _verdict(report: StatusReport) -> str:
    problems = []
    for w in report.workflows:
        if w.counts["error"]:
            problems.append(f"{w.name}: {rows(w.counts['error'])} in Error")
        if w.expired_leases:
            problems.append(f"{w.name}: {rows(w.expired_leases)} past their lease")
    return "failures found: " + "; ".join(problems) if problems else "no failures"


# --- the command -----------------------------------------------------------------------------


async def _show(
    settings: curate.CurateSettings,
    workflows: list[Workflow],
    as_json: bool,
    watch: float | None,
) -> int:
    where = safe_url(settings.database_url)
    if settings.database_schema:
        where += f" (schema {settings.database_schema})"
    console = Console()

    def print_json(report: StatusReport) -> None:
        click.echo(json.dumps(report.as_json(), indent=None if watch else 2))

    def print_table(report: StatusReport) -> None:
        console.print(render(report, where))

    async with database(settings, workflows) as engine:

        async def read() -> StatusReport:
            return await read_status(engine, workflows)

        show = print_json if as_json else print_table
        if watch is None:
            report = await read()
            show(report)
            return report.exit_code
        if as_json or not console.is_terminal:  # a file or a pipe gets every refresh
            return await _every(watch, read, show)
        with Live(console=console, auto_refresh=False) as live:
            return await _every(
                watch, read, lambda report: live.update(render(report, where), refresh=True)
            )


async def _every(
    seconds: float,
    read: Callable[[], Awaitable[StatusReport]],
    show: Callable[[StatusReport], None],
) -> int:
    """Read and show every ``seconds`` until SIGINT/SIGTERM; the last report's exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        while True:
            report = await read()
            show(report)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
            if stop.is_set():
                return report.exit_code
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@click.command()
@app_option
@workflow_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema: docs/reference/cli.md).")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[SECONDS]",
    help="Refresh every SECONDS (default 2) until Ctrl-C; with --json, one line per refresh.",
)
def status(app: str | None, names: tuple[str, ...], as_json: bool, watch: float | None) -> None:
    """Show each workflow's queue: rows per status, the oldest queued row, rows Processing
    past their lease, rows in Error grouped by message, and completions per minute over
    the last 5 minutes.

    The ages and the throughput come from the table's updated_at column ("n/a" without
    one); expired leases need the lease column ("n/a" without it).

    Exits 1 when any workflow has rows in Error or past their lease ("failures found"),
    else 0; with --watch, as of the last refresh.

    \b
    Examples:
      curate status
      curate status --workflow sitemap_import --workflow page_curation
      curate status --json | jq '.workflows[] | {name, counts}'
      curate status --watch 5
      CURATE_APP=myapp.services.workflows:WORKFLOWS curate status
    """
    settings = load_settings()
    curate.configure_logging(settings.log_level)
    workflows = app_workflows(app, names)
    code = run(_show(settings, workflows, as_json, watch), settings)
    click.get_current_context().exit(code)
