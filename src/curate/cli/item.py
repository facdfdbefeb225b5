"""`curate item`: one item of a workflow, its status columns and the history of its attempts.

Where an operator looks first when one row went wrong: what state it is in now, and how
each attempt ended (when, on which worker, with which error and where it was raised).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

import curate
from curate import operations
from curate.cli.common import (
    EXIT_FAILURES,
    UsageProblem,
    app_option,
    app_workflows,
    complete_workflow_names,
    database,
    load_settings,
    run,
)
from curate.operations import Attempt, ItemState
from curate.workflow import Workflow


async def _read(
    settings: curate.CurateSettings, workflow: Workflow, item_id: Any, limit: int
) -> tuple[ItemState | None, list[Attempt] | None]:
    async with database(settings, [workflow]) as engine:
        state = await operations.read_item(engine, workflow, item_id)
        attempts = await operations.read_attempts(engine, workflow, item_id, limit)
        return state, attempts


def _time(value: datetime | None) -> str:
    return "—" if value is None else value.isoformat(timespec="milliseconds")


def _state_lines(state: ItemState) -> list[str]:
    fields = {
        "status": state.status,
        "error": state.error,
        "attempts": state.attempts,
        "run after": _time(state.run_after) if state.run_after else None,
        "claimed by": state.claimed_by,
        "lease until": _time(state.lease_until) if state.lease_until else None,
        "updated at": _time(state.updated_at) if state.updated_at else None,
    }
    return [f"  {name:<12} {'—' if value is None else value}" for name, value in fields.items()]


def _attempt_lines(attempt: Attempt) -> list[str]:
    took = ""
    if attempt.started_at is not None:
        took = f" in {(attempt.ended_at - attempt.started_at).total_seconds():.3f} s"
    lines = [
        f"  #{attempt.attempt} {attempt.outcome}{took}, ended {_time(attempt.ended_at)}"
        f" on {attempt.worker or 'no worker'}"
    ]
    if attempt.error:
        lines.append(f"      {attempt.error}")
    if attempt.traceback:
        lines.extend(f"      {line}" for line in attempt.traceback.rstrip().splitlines())
    return lines


def _as_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@click.command()
@click.argument("name", metavar="NAME", shell_complete=complete_workflow_names)
@click.argument("item_id", metavar="ID")
@app_option
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=operations.ATTEMPTS_SHOWN,
    show_default=True,
    help="Show at most this many attempts, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def item(name: str, item_id: str, app: str | None, limit: int, as_json: bool) -> None:
    """Show item ID (its primary key) of workflow NAME: its status columns and its
    attempts, newest first (outcome, worker, error, the traceback's last frames).

    Exit 1 when there is no such row.

    \b
    Examples:
      curate item page_curation 3f2c9a0e-8d1b-4c55-9a7e-1b2c3d4e5f60
      curate item sitemap_import 42 --json
    """
    settings = load_settings()
    curate.configure_logging(settings.log_level)
    [workflow] = app_workflows(app, (name,))
    try:
        [typed_id] = operations.item_ids(workflow, [item_id])
    except operations.InvalidItemId as error:
        raise UsageProblem(f"ID {error}") from None
    state, attempts = run(_read(settings, workflow, typed_id, limit), settings)
    if state is None:
        click.echo(f"no item {item_id} in {workflow.binding.table.name}", err=True)
        raise SystemExit(EXIT_FAILURES)
    if as_json:
        document = {
            "workflow": workflow.name,
            "item": asdict(state),
            "attempts": None if attempts is None else [asdict(a) for a in attempts],
        }
        click.echo(json.dumps(document, default=_as_json, indent=2))
        return
    click.echo(f"{workflow.name} item {state.id} (table {workflow.binding.table.name})")
    for line in _state_lines(state):
        click.echo(line)
    if attempts is None:
        click.echo("attempts: not recorded (curate_attempts does not exist: curate db upgrade)")
        return
    click.echo(f"attempts, newest first ({len(attempts)}):" if attempts else "attempts: none")
    for attempt in attempts:
        for line in _attempt_lines(attempt):
            click.echo(line)
