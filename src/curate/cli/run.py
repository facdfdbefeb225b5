"""`curate run`: a standalone worker process, for deployments that keep workers out of the
web process, and ``--once`` for cron jobs and tests."""

from __future__ import annotations

import click

import curate
from curate.cli.common import (
    app_option,
    app_workflows,
    check_tables,
    load_settings,
    run,
    workflow_option,
)
from curate.logs import logger
from curate.preflight import safe_url
from curate.runtime import WorkflowStats
from curate.worker import run_burst, run_worker
from curate.workflow import Workflow


async def _work(
    runtime: curate.Runtime, workflows: list[Workflow], once: bool, metrics_port: int | None
) -> None:
    """Check settings, tables and the connection before the first claim, then work."""
    try:
        for workflow in workflows:
            runtime.workflow_settings(workflow)  # a bad <NAME>_SCHEDULER_* value stops us here
        await check_tables(runtime.database, workflows)
    except BaseException:
        await runtime.close()
        raise
    if metrics_port is None:
        await _process(runtime, workflows, once)
        return
    from curate.metrics import start_exporter  # the metrics extra, only when asked for

    exporter = await start_exporter(runtime, workflows, metrics_port)
    try:
        await _process(runtime, workflows, once)
    finally:
        exporter.close()
        await exporter.wait_closed()


async def _process(runtime: curate.Runtime, workflows: list[Workflow], once: bool) -> None:
    if once:
        await run_burst(workflows, runtime)
        for workflow in workflows:
            stats = runtime.stats.get(workflow.name) or WorkflowStats()
            click.echo(
                f"{workflow.name}: {stats.completed} complete, {stats.failed} failed,"
                f" {stats.retried} retried"
            )
    else:
        await run_worker(workflows, runtime)


@click.command("run")
@app_option
@workflow_option
@click.option("--once", is_flag=True, help="Process until every queue is empty, then exit.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1_000),
    metavar="N",
    help="Items processed at once per workflow (overrides <NAME>_SCHEDULER_CONCURRENCY).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65_535),
    metavar="PORT",
    help=(
        "Serve Prometheus metrics on http://0.0.0.0:PORT/metrics"
        " (needs the extra curate-workflows[metrics])."
    ),
)
def run_command(
    app: str | None,
    names: tuple[str, ...],
    once: bool,
    concurrency: int | None,
    metrics_port: int | None,
) -> None:
    """Run the app's workflows in this process until SIGTERM or Ctrl-C.

    Every workflow is polled on its interval and the rescuer returns the rows of dead
    workers, as in the app. On SIGTERM or SIGINT the worker stops claiming, lets running
    items finish for up to CURATE_SHUTDOWN_GRACE_SECONDS, re-queues what is still running
    and exits 0. Run as many workers as you like against one database.

    With --once it processes until no queue has due rows (rescuing expired leases too),
    prints what it did and exits 0; rows that failed are recorded on the rows (see curate
    status). Logging follows CURATE_LOG_LEVEL, as JSON lines with CURATE_LOG_JSON=true.

    \b
    Examples:
      curate run
      curate run --workflow sitemap_import --concurrency 8
      curate run --once
      curate run --metrics-port 9108
      CURATE_APP=myapp.services.workflows:WORKFLOWS curate run
    """
    settings = load_settings()
    curate.configure_logging(settings.log_level, json=settings.log_json)
    workflows = app_workflows(app, names)
    overrides = {"concurrency": concurrency} if concurrency is not None else None
    runtime = curate.configure(settings, workflow_overrides=overrides)
    listed = ", ".join(w.name for w in workflows)
    logger.info("curate run: {} on {}", listed, safe_url(settings.database_url))
    run(_work(runtime, workflows, once, metrics_port), settings)
