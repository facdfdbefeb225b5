"""The project's Alembic history as Alembic itself reads it: heads, revision files, and
where a new revision goes.

Alembic's `ScriptDirectory` knows every way a revision can be written (plain or annotated
assignments, tuples of down revisions, branch labels, several version locations), so the
scaffold asks it rather than reading the files itself.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from curate.errors import ConfigurationError
from curate.project import Project


@dataclass(frozen=True)
class History:
    """What a new revision needs to know of the history before it."""

    versions: Path
    """The folder the new revision goes in."""
    head: str | None
    """The revision it follows; None for the first one."""
    scripts: tuple[Path, ...]
    """Every revision's file."""


def read_history(project: Project) -> History:
    """The history of the Alembic set-up at ``project.alembic_ini``; a history with several
    heads, or one Alembic cannot read, raises `ConfigurationError`."""
    ini = project.alembic_ini
    with _as_alembic_runs(project):
        try:
            script = ScriptDirectory.from_config(Config(str(ini)))
            heads = script.get_heads()
            scripts = tuple(Path(s.path).resolve() for s in script.walk_revisions())
            versions = _versions(script, heads)
        except ConfigurationError:
            raise
        except Exception as error:  # the revision files are the user's code
            raise ConfigurationError(
                f"Alembic cannot read the migrations of {ini.relative_to(project.root)}:"
                f" {type(error).__name__}: {error}"
            ) from None
    if len(heads) > 1:
        raise ConfigurationError(
            f"the migrations have several heads ({', '.join(sorted(heads))}); merge them"
            ' first (alembic merge heads -m "merge heads"), then run again'
        )
    return History(project.inside(versions), next(iter(heads), None), scripts)


def _versions(script: ScriptDirectory, heads: list[str]) -> Path:
    """Where Alembic's own ``revision`` command would put the next revision."""
    if len(script.version_locations) <= 1:
        return Path(script.versions).resolve()
    if not heads:
        raise ConfigurationError(
            "alembic.ini lists several version_locations and no revision exists yet, so the"
            " first one's folder is ambiguous; write it with alembic revision --version-path"
        )
    head = script.get_revision(heads[0])
    assert head is not None
    return Path(head.path).resolve().parent


@contextlib.contextmanager
def _as_alembic_runs(project: Project) -> Iterator[None]:
    """From the project's root with its package importable, as `curate db` runs Alembic:
    relative paths in alembic.ini, and imports in the revision files, mean the same."""
    path = str(project.package_dir.parent)
    added = path not in sys.path
    if added:
        sys.path.insert(0, path)
    try:
        with contextlib.chdir(project.root):
            yield
    finally:
        if added and path in sys.path:
            sys.path.remove(path)
