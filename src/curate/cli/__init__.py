"""The `curate` command line: one module per command group, gathered here."""

from __future__ import annotations

import click

from curate import __version__
from curate.cli.demo import demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curate")
def main() -> None:
    """curate: status-driven background workflows on your PostgreSQL tables."""


main.add_command(demo)
