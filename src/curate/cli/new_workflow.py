"""`curate new-workflow NAME`: scaffold a workflow in the house conventions."""

from __future__ import annotations

import click

from curate.cli.common import UsageProblem
from curate.errors import ConfigurationError
from curate.project import Project
from curate.scaffold.changes import Change, apply
from curate.scaffold.plan import Request, plan_new_workflow


@click.command("new-workflow")
@click.argument("name")
@click.option(
    "--table", help="The table the workflow runs over (its model is found in <package>.models)."
)
@click.option("--model", metavar="MODULE:CLASS", help="The model class, e.g. myapp.models:Photo.")
@click.option("--package", help="The project's package (default: [tool.curate] package).")
@click.option(
    "--service-only",
    is_flag=True,
    help="The table has the workflow's columns already: no model change, no migration.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def new_workflow(
    name: str,
    table: str | None,
    model: str | None,
    package: str | None,
    service_only: bool,
    dry_run: bool,
    force: bool,
) -> None:
    """Scaffold the workflow NAME over a table of your project.

    Writes <package>/services/NAME_scheduler.py (process_pending_NAMEs,
    setup_NAME_scheduler), NAME_service.py (process_single_NAME), the model's columns
    (a mixin in <package>/workflow_columns.py), an Alembic migration, the registration
    in <package>/services/workflows.py, settings in .env.example and
    tests/test_NAME_workflow.py (and, in a pyproject.toml that configures no pytest, the
    settings that test needs). Nothing is written if anything is wrong.

    The migration follows the head of the project's Alembic history (several heads:
    merge them first). A project with no Alembic set-up gets the one `curate db init`
    writes, alongside.

    \b
    Examples:
      curate new-workflow thumbnail --table photos
      curate new-workflow thumbnail --model myapp.models:Photo --dry-run
    """
    try:
        project = Project.find()
        if package:
            project = project.with_package(package)
        changes = plan_new_workflow(
            project,
            Request(name=name, model=model, table=table, service_only=service_only, force=force),
        )
    except ConfigurationError as error:
        raise UsageProblem(str(error)) from None
    write_changes(
        project,
        changes,
        dry_run,
        next_step="apply the migration (curate db upgrade), then run"
        f" tests/test_{name}_workflow.py (pytest, with pytest-asyncio installed)",
    )


def write_changes(project: Project, changes: list[Change], dry_run: bool, next_step: str) -> None:
    """Say what is written (one line per file; its content too on a dry run), then, unless
    a dry run, write it and say what to do next."""
    _echo_changes(project, changes, dry_run)
    if not dry_run:
        apply(changes)
        click.echo(f"next: {next_step}")


def _echo_changes(project: Project, changes: list[Change], dry_run: bool) -> None:
    """One line per file to write (with its content on a dry run)."""
    for change in changes:
        relative = change.path.relative_to(project.root)
        verb = "update" if change.exists else "create"
        if change.content is None:
            click.echo(f"{'would ' if dry_run else ''}{verb} {relative}/")
            continue
        click.echo(f"{'would ' if dry_run else ''}{verb} {relative}")
        if dry_run:
            click.echo("".join(f"    {line}\n" for line in change.content.splitlines()))
