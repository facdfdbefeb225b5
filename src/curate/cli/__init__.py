"""The `curate` command line: one module per command group, gathered here.

Shell completion: ``eval "$(_CURATE_COMPLETE=bash_source curate)"`` (zsh_source, fish_source).
"""

from __future__ import annotations

import click

from curate import __version__
from curate.cli.db import db
from curate.cli.demo import demo
from curate.cli.new_workflow import new_workflow
from curate.cli.pause import pause, resume
from curate.cli.requeue import requeue
from curate.cli.run import run_command
from curate.cli.status import status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curate")
@click.option("--debug", is_flag=True, help="Show tracebacks of expected errors too.")
def main(debug: bool) -> None:
    """curate: status-driven background workflows on your PostgreSQL tables.

    Exit codes: 0 ok, 1 failures found, 2 usage or configuration error (a table
    not migrated too), 3 database unreachable or refusing the connection (a wrong
    database name, role or password).
    """


main.add_command(demo)
main.add_command(status)
main.add_command(run_command)
main.add_command(requeue)
main.add_command(pause)
main.add_command(resume)
main.add_command(db)
main.add_command(new_workflow)
