"""The files a scaffold command writes: planned in full first, then written together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Change:
    """One file to create, or to replace with new content; or a folder to create."""

    path: Path
    content: str | None
    """The file's text; None for a folder."""
    exists: bool

    @property
    def unchanged(self) -> bool:
        """Writing it would change nothing."""
        if self.content is None:
            return self.path.is_dir()
        return self.exists and self.path.read_text() == self.content


def write(path: Path, content: str, keep: bool = False) -> Change:
    """A change to ``path``; with ``keep`` an existing file stays as it is."""
    if keep and path.exists():
        return Change(path, path.read_text(), exists=True)
    return Change(path, content, exists=path.exists())


def folder(path: Path) -> Change:
    """A folder to create (Alembic's empty versions folder)."""
    return Change(path, None, exists=path.exists())


def apply(changes: list[Change]) -> None:
    for change in changes:
        if change.content is None:
            change.path.mkdir(parents=True, exist_ok=True)
            continue
        change.path.parent.mkdir(parents=True, exist_ok=True)
        change.path.write_text(change.content)
