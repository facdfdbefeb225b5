"""`curate cancel`: end rows of a workflow cancelled; running ones where they run.

As `curate requeue`: counting, asking and cancelling are three steps with no transaction
held open while a person answers, and the cancel re-checks its conditions row by row.
"""

from __future__ import annotations

from collections.abc import Awaitable

import click
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import operations
from curate.cli.common import (
    CONFIRM_ABOVE,
    UsageProblem,
    app_option,
    app_workflows,
    complete_workflow_names,
    confirmed,
    described,
    item_ids_option,
    load_settings,
    on_database,
    rows,
    run,
    typed_ids,
)
from curate.operations import CancelCount
from curate.sql.cancel import CancelSelection
from curate.workflow import Workflow


def _described(workflow: Workflow, selection: CancelSelection) -> str:
    chosen = [f"in {workflow.statuses.failed.value}"] if selection.errors else []
    return described(workflow, chosen, selection.ids, selection.where_error)


def _counted(count: CancelCount) -> str:
    return f"{rows(count.waiting)} at once and {rows(count.running)} running"


@click.command()
@click.argument("name", metavar="NAME", shell_complete=complete_workflow_names)
@app_option
@item_ids_option
@click.option(
    "--errors",
    is_flag=True,
    help="Rows in the failed status (Error), moved to the workflow's cancelled status.",
)
@click.option(
    "--where-error",
    metavar="TEXT",
    help="Rows whose error contains TEXT (any case): retries waiting, or with --errors.",
)
@click.option("--reason", metavar="TEXT", help="Why: stored in the rows' error, 'Cancelled: TEXT'.")
@click.option("--yes", "-y", is_flag=True, help=f"Do not ask, even above {CONFIRM_ABOVE} rows.")
@click.option("--dry-run", is_flag=True, help="Only count the rows that would be cancelled.")
def cancel(
    name: str,
    app: str | None,
    ids: tuple[str, ...],
    errors: bool,
    where_error: str | None,
    reason: str | None,
    yes: bool,
    dry_run: bool,
) -> None:
    """Cancel rows of workflow NAME: they end in its cancelled status (a status named
    Cancelled, or the one named by Workflow(cancelled_status=...); without one, its failed
    status), the error saying 'Cancelled'.

    Say which rows: --id and --where-error choose among rows Queued or Processing; --errors
    chooses rows in the failed status instead (only for a workflow with a cancelled status).
    A queued row, or one whose worker is gone (its lease expired), ends cancelled at once.
    A running row is cancelled where it runs: its worker hears it (NOTIFY, or its next
    heartbeat), cancels the service, rolls back the service's transaction and records the
    cancellation. One that finishes first keeps its outcome.

    Prints how many rows it cancelled and how many running ones it asked. Above 100 rows
    it asks first, unless --yes.

    \b
    Examples:
      curate cancel page_curation --id 3f2c9a0e-8d1b-4c55-9a7e-1b2c3d4e5f60 --reason "wrong site"
      curate cancel sitemap_import --where-error "HTTP 404" --dry-run
    """
    if not (errors or ids or where_error is not None):
        raise UsageProblem("say which rows to cancel: --id ID, --where-error TEXT or --errors")
    settings = load_settings()
    curate.configure_logging(settings.log_level)
    [workflow] = app_workflows(app, (name,))
    selection = CancelSelection(typed_ids(workflow, ids), errors, where_error)
    what = _described(workflow, selection)
    try:
        count = run(
            on_database(
                settings, workflow, lambda e: operations.count_cancel(e, workflow, selection)
            ),
            settings,
        )
    except curate.ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    total = count.waiting + count.running
    if total == 0:
        click.echo(f"no rows {what} to cancel; nothing cancelled")
        return
    if dry_run:
        click.echo(f"would cancel {_counted(count)} {what}")
        return
    if total > CONFIRM_ABOVE and not yes and not confirmed(f"cancel {rows(total)} {what}?"):
        click.echo("nothing cancelled")
        return
    try:
        record = settings.attempt_history != "off"

        def cancel(engine: AsyncEngine) -> Awaitable[CancelCount]:
            return operations.cancel(engine, workflow, selection, reason, record_history=record)

        done = run(on_database(settings, workflow, cancel), settings)
    except curate.ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    click.echo(
        f"cancelled {rows(done.waiting)} {what}; asked the workers of {rows(done.running)} running"
    )
