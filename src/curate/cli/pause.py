"""`curate pause` / `curate resume`: stop and restart a workflow on every worker at once.

The flag lives in the database (``curate_workflow_controls``), so no worker needs a
restart: each one checks it before every claim. Resuming also sends the workflow's NOTIFY,
so listening workers start on the queue at once. Without that table (a migration makes
it) both refuse, exit 2, saying how to create it.
"""

from __future__ import annotations

import click

import curate
from curate import operations
from curate.cli.common import (
    app_option,
    app_workflows,
    complete_workflow_names,
    database,
    load_settings,
    run,
)
from curate.workflow import Workflow

name_argument = click.argument("name", metavar="NAME", shell_complete=complete_workflow_names)


async def _pause(settings: curate.CurateSettings, workflow: Workflow, reason: str | None) -> bool:
    async with database(settings, [workflow]) as engine:
        return await operations.pause_workflow(engine, workflow, reason)


async def _resume(settings: curate.CurateSettings, workflow: Workflow) -> bool:
    async with database(settings, [workflow]) as engine:
        return await operations.resume_workflow(engine, workflow)


def _workflow(app: str | None, name: str) -> tuple[curate.CurateSettings, Workflow]:
    settings = load_settings()
    curate.configure_logging(settings.log_level)
    [workflow] = app_workflows(app, (name,))
    return settings, workflow


@click.command()
@name_argument
@app_option
@click.option(
    "--reason", metavar="TEXT", help="Why, and who: shown by curate status until resumed."
)
def pause(name: str, app: str | None, reason: str | None) -> None:
    """Pause workflow NAME: no worker claims its rows until `curate resume NAME`.

    Every worker, app replica or `curate run` process sees the pause at its next claim,
    without a restart; runs in progress stop claiming, and items already running
    finish. Rows can still be queued meanwhile. Pausing a paused workflow changes
    nothing (it keeps its first reason). The flag is kept in curate's table
    curate_workflow_controls, which `curate db upgrade` creates.

    \b
    Examples:
      curate pause sitemap_import --reason "supplier API down (ana)"
      curate status --workflow sitemap_import
      curate resume sitemap_import
    """
    settings, workflow = _workflow(app, name)
    if run(_pause(settings, workflow, reason), settings):
        click.echo(f"paused {workflow.name}: no worker claims its rows until resumed")
    else:
        click.echo(f"{workflow.name} was already paused")


@click.command()
@name_argument
@app_option
def resume(name: str, app: str | None) -> None:
    """Resume workflow NAME after `curate pause`: workers claim its rows again.

    Listening workers are woken at once (NOTIFY); the others start at their next poll.
    Resuming a workflow that is not paused changes nothing.

    \b
    Examples:
      curate resume sitemap_import
      CURATE_APP=myapp.services.workflows:WORKFLOWS curate resume page_curation
    """
    settings, workflow = _workflow(app, name)
    if run(_resume(settings, workflow), settings):
        click.echo(f"resumed {workflow.name}")
    else:
        click.echo(f"{workflow.name} was not paused")
