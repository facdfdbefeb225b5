"""The `curate` command line: one module per command group, gathered here.

Shell completion: ``eval "$(_CURATE_COMPLETE=bash_source curate)"`` (zsh_source, fish_source).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

import click

from curate import __version__

_PLACES = {
    "cancel": ("curate.cli.cancel", "cancel"),
    "db": ("curate.cli.db", "db"),
    "demo": ("curate.cli.demo", "demo"),
    "item": ("curate.cli.item", "item"),
    "new-workflow": ("curate.cli.new_workflow", "new_workflow"),
    "pause": ("curate.cli.pause", "pause"),
    "requeue": ("curate.cli.requeue", "requeue"),
    "resume": ("curate.cli.pause", "resume"),
    "run": ("curate.cli.run", "run_command"),
    "status": ("curate.cli.status", "status"),
}
"""Each command's module and name in it."""


class _Commands(MutableMapping[str, click.Command]):
    """The commands by name, each module imported when its command is first looked up:
    ``curate run``, a worker process, loads neither Alembic (``curate db``) nor rich
    (``curate status``), which would be a seventh of its memory."""

    def __init__(self, places: dict[str, tuple[str, str]]) -> None:
        self._places = places
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        command = self._loaded.get(name)
        if command is None:
            module, attribute = self._places[name]
            command = getattr(importlib.import_module(module), attribute)
            self._loaded[name] = command
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self._places and name not in self._loaded:
            raise KeyError(name)
        self._places.pop(name, None)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._places, *self._loaded]))

    def __len__(self) -> int:
        return len(self._places.keys() | self._loaded.keys())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curate")
@click.option("--debug", is_flag=True, help="Show tracebacks of expected errors too.")
def main(debug: bool) -> None:
    """curate: status-driven background workflows on your PostgreSQL tables.

    Exit codes: 0 ok, 1 failures found, 2 usage or configuration error (a table
    not migrated too), 3 database unreachable or refusing the connection (a wrong
    database name, role or password).
    """


main.commands = _Commands(dict(_PLACES))
