"""`curate status`: how each workflow's queue stands, as a table for people or JSON for tools.

Exit 1 when any workflow has rows in its failed status or rows Processing past their
lease, so a cron job or a health check can alert on the exit code alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import click
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

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
    workflow_option,
)
from curate.operations import THROUGHPUT_WINDOW, StatusReport, WorkflowStatus, read_status
from curate.preflight import safe_url
from curate.workflow import Workflow

JSON_VERSION = 1
"""Bumped when a field of the JSON output changes meaning or goes away (additions keep it)."""


def report_json(report: StatusReport) -> dict[str, Any]:
    """The versioned JSON of ``curate status --json``."""
    return {
        "version": JSON_VERSION,
        "generated_at": _iso(report.at),
        "throughput_window_seconds": int(THROUGHPUT_WINDOW.total_seconds()),
        "failures_found": report.failures_found,
        "workflows": [_workflow_json(w) for w in report.workflows],
    }


def _workflow_json(status: WorkflowStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "table": status.table,
        "counts": status.counts,
        "oldest_queued_seconds": status.oldest_queued_seconds,
        "expired_leases": status.expired_leases,
        "throughput_per_minute": status.throughput_per_minute,
        "errors": [
            {
                "message": group.message,
                "rows": group.rows,
                "last_seen": _iso(group.last_seen),
                "example": group.example,
            }
            for group in status.errors
        ],
        "failures_found": status.failures_found,
        "paused": status.paused,
        "paused_at": _iso(status.paused_at),
        "paused_reason": status.paused_reason,
        "rate_limit": status.rate_limit,
    }


def exit_code(report: StatusReport) -> int:
    """1 when any workflow has failures, else 0."""
    return EXIT_FAILURES if report.failures_found else EXIT_OK


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
    extra = [  # shown only where some workflow has such rows
        (key, heading)
        for key, heading in (("other", "Other"), ("unset", "No\nstatus"))
        if any(w.counts[key] for w in report.workflows)
    ]
    overview.add_column("Workflow", no_wrap=True)
    for heading in ("Queued", "Processing", "Complete", "Error", *(h for _, h in extra)):
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
        other = [str(w.counts[key]) for key, _ in extra]
        if w.throughput_per_minute is None:
            oldest, throughput = "n/a", "n/a"
        else:
            oldest = "-" if w.oldest_queued_seconds is None else age(w.oldest_queued_seconds)
            throughput = f"{w.throughput_per_minute:g}"
        expired = Text(
            "n/a" if w.expired_leases is None else str(w.expired_leases),
            style="bold red" if w.expired_leases else "",
        )
        name = Text(f"{w.name} (paused)", style="bold yellow") if w.paused else w.name
        overview.add_row(name, *counts, error, *other, oldest, expired, throughput)
    parts.extend(_controls(w, report.at) for w in report.workflows if w.paused or w.rate_limit)
    window = age(THROUGHPUT_WINDOW.total_seconds())
    parts.append(Text(f"Done/min: rows completed per minute over the last {window}.\n"))
    parts.extend(_error_table(w, report.at) for w in report.workflows if w.errors)
    parts.append(Text(_verdict(report), style="bold red" if report.failures_found else "green"))
    return Group(*parts)


def _controls(status: WorkflowStatus, at: datetime) -> Text:
    """One line on a paused or rate-limited workflow: since when, why, how fast."""
    said = []
    if status.paused:
        since = f" {age((at - status.paused_at).total_seconds())} ago" if status.paused_at else ""
        why = f": {status.paused_reason}" if status.paused_reason else ""
        said.append(f"paused{since}{why}")
    if status.rate_limit:
        said.append(f"rate limit {status.rate_limit:g}/s")
    return Text(f"{status.name}: {'; '.join(said)}", style="yellow" if status.paused else "")


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
        click.echo(json.dumps(report_json(report), indent=None if watch else 2))

    def print_table(report: StatusReport) -> None:
        console.print(render(report, where))

    async with database(settings, workflows) as engine:

        async def read() -> StatusReport:
            return await read_status(engine, workflows)

        show = print_json if as_json else print_table
        if watch is None:
            report = await read()
            show(report)
            return exit_code(report)
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
                return exit_code(report)
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
    one); expired leases need the lease column ("n/a" without it). A paused workflow
    (curate pause) is marked "(paused)", with when and why; a rate limit is shown too.

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
