"""`curate requeue`: put failed, stuck or chosen rows of a workflow back to Queued.

Counting, asking and re-queueing are three steps with no transaction held open while a
person answers; the update re-checks its conditions row by row, so a row that a worker
claimed in the meantime is left alone.
"""

from __future__ import annotations

import click

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
from curate.sql import RequeueSelection
from curate.workflow import Workflow


def _described(workflow: Workflow, selection: RequeueSelection) -> str:
    chosen = []
    if selection.errors:
        chosen.append(f"in {workflow.statuses.failed.value}")
    if selection.stuck:
        chosen.append(f"stuck in {workflow.statuses.processing.value}")
    return described(workflow, chosen, selection.ids, selection.where_error)


@click.command()
@click.argument("name", metavar="NAME", shell_complete=complete_workflow_names)
@app_option
@click.option("--errors", is_flag=True, help="Rows in the failed status (Error).")
@click.option(
    "--stuck",
    is_flag=True,
    help="Rows Processing whose lease expired; on a table without lease columns, every"
    " Processing row (make sure no worker runs them).",
)
@item_ids_option
@click.option(
    "--where-error",
    metavar="TEXT",
    help="Rows whose error contains TEXT (any case); combine with --errors.",
)
@click.option("--yes", "-y", is_flag=True, help=f"Do not ask, even above {CONFIRM_ABOVE} rows.")
@click.option("--dry-run", is_flag=True, help="Only count the rows that would be re-queued.")
def requeue(
    name: str,
    app: str | None,
    errors: bool,
    stuck: bool,
    ids: tuple[str, ...],
    where_error: str | None,
    yes: bool,
    dry_run: bool,
) -> None:
    """Put rows of workflow NAME back to Queued: attempts reset to 0, error and claim
    cleared, due now.

    Say which rows: --errors and --stuck choose by status (either matches); --id and
    --where-error narrow the choice, or choose on their own from every status. A running
    row (Processing under a live lease, or any Processing row on a table without lease
    columns) is only ever taken by --stuck.

    Prints how many rows it re-queued. Above 100 rows it asks first, unless --yes; a
    prompt that cannot be answered (no terminal) is a usage error.

    \b
    Examples:
      curate requeue sitemap_import --errors --dry-run
      curate requeue sitemap_import --errors --where-error "TimeoutError"
      curate requeue page_curation --stuck --yes
      curate requeue page_curation --id 3f2c9a0e-8d1b-4c55-9a7e-1b2c3d4e5f60
    """
    if not (errors or stuck or ids or where_error is not None):
        raise UsageProblem(
            "say which rows to re-queue: --errors, --stuck, --id ID or --where-error TEXT"
        )
    settings = load_settings()
    curate.configure_logging(settings.log_level)
    [workflow] = app_workflows(app, (name,))
    try:
        selection = RequeueSelection(errors, stuck, typed_ids(workflow, ids), where_error)
    except curate.ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    what = _described(workflow, selection)
    count = run(
        on_database(settings, workflow, lambda e: operations.count_requeue(e, workflow, selection)),
        settings,
    )
    if count == 0:
        click.echo(f"no rows {what}; nothing re-queued")
        return
    if dry_run:
        click.echo(f"would re-queue {rows(count)} {what}")
        return
    if count > CONFIRM_ABOVE and not yes and not confirmed(f"re-queue {rows(count)} {what}?"):
        click.echo("nothing re-queued")
        return
    moved = run(
        on_database(settings, workflow, lambda e: operations.requeue(e, workflow, selection)),
        settings,
    )
    click.echo(f"re-queued {rows(moved)} {what}")
