"""docs/reference/cli.md shows every command's real ``--help``, so the page cannot drift.

The region between the two generated markers is written from the command tree of
`curate.cli.main` (every command and subcommand, 80 columns); after changing a command's
help or adding a command, ``.venv/bin/python -m tests.test_cli_reference --write``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from curate.cli import main

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = ROOT / "docs" / "reference" / "cli.md"
START = "<!-- generated: command help (python -m tests.test_cli_reference --write) -->"
END = "<!-- end of generated command help -->"
WIDTH = 80


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path below ``curate``, parents before children, by name."""
    found = [path]
    for name in sorted(group.commands):
        command = group.commands[name]
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


def help_text(path: tuple[str, ...]) -> str:
    """As a terminal of WIDTH columns shows it: click wraps help at WIDTH - 2 there
    (CliRunner would force 80)."""
    result = CliRunner().invoke(
        main, [*path, "--help"], prog_name="curate", terminal_width=WIDTH - 2
    )
    assert result.exit_code == 0, result.output
    return result.output.rstrip("\n")


def generated() -> str:
    sections = []
    for path in commands():
        title = " ".join(("curate", *path))
        sections.append(f"### `{title}`\n\n```text\n{help_text(path)}\n```")
    return "\n\n".join(sections)


def documented() -> tuple[str, str, str]:
    """The page split into: before the region, the region, after it."""
    text = CLI_MD.read_text()
    before, start, rest = text.partition(START)
    region, end, after = rest.partition(END)
    assert start and end, f"{CLI_MD} lacks the markers {START!r} and {END!r}"
    return before + start, region.strip("\n"), end + after


def write() -> None:
    before, _, after = documented()
    CLI_MD.write_text(f"{before}\n\n{generated()}\n\n{after}")


def test_the_reference_shows_every_commands_real_help() -> None:
    assert documented()[1] == generated(), (
        "docs/reference/cli.md differs from the commands' --help:"
        " .venv/bin/python -m tests.test_cli_reference --write"
    )


def test_the_installed_script_prints_the_same_help() -> None:
    """The console script, not just the click object, prints what the page shows."""
    curate = Path(sys.executable).with_name("curate")
    out = subprocess.run(
        [str(curate), "requeue", "--help"],
        env={**os.environ, "COLUMNS": str(WIDTH)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"```text\n{out.rstrip()}\n```" in CLI_MD.read_text()


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    write()
