"""curate installs by its distribution name, ``curate-workflows``, and works outside the
repository: what a project depending on it gets.

The sdist, and the wheel from that sdist, are built with ``python -m build`` (as a release
would be) from a copy of the working tree; the wheel goes into a fresh virtualenv with its
dependencies from the package index, and the ``curate`` command and a small workflow run
there, on a database of their own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from curate import __version__
from curate.cli import main as cli

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "curate-workflows"
SUPPORTED = ("3.11", "3.12", "3.13")
INFO = f"curate_workflows-{__version__}.dist-info"


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    package_files: set[str]
    """The files of src/curate/ in the copy built, relative to src/ (``curate/py.typed``)."""


def _working_tree(into: Path) -> Path:
    """Copy the files git sees (tracked, and new ones not ignored): a clone with today's
    changes, without .venv, build output or egg-info that would leak into the build."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # not a deletion waiting to be committed
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tree = _working_tree(tmp_path_factory.mktemp("checkout"))
    dist = tree / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [sdist] = dist.glob("*.tar.gz")
    [wheel] = dist.glob("*.whl")
    package = tree / "src"
    files = {
        path.relative_to(package).as_posix()
        for path in (package / "curate").rglob("*")
        if path.is_file()
    }
    return Built(sdist, wheel, files)


def test_the_sdist_carries_the_package_its_licence_and_readme(built: Built) -> None:
    assert built.sdist.name == f"curate_workflows-{__version__}.tar.gz"
    with tarfile.open(built.sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    assert {"pyproject.toml", "README.md", "LICENSE", "src/curate/py.typed"} <= names
    missing = {f"src/{name}" for name in built.package_files} - names
    assert not missing, missing


def test_the_wheel_is_named_and_described_for_an_index(built: Built) -> None:
    """Built from the sdist, so a file the sdist lacks is missing here too."""
    assert built.wheel.name.startswith("curate_workflows-"), built.wheel.name
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = Parser().parsestr(wheel.read(f"{INFO}/METADATA").decode())
        entry_points = wheel.read(f"{INFO}/entry_points.txt").decode()
    shipped = {name for name in names if name.startswith("curate/")}
    assert shipped == built.package_files, shipped ^ built.package_files
    assert "curate/py.typed" in shipped
    assert f"{INFO}/licenses/LICENSE" in names
    assert (metadata["Name"], metadata["Version"]) == (DISTRIBUTION, __version__)
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License-Expression"] == "MIT"
    classifiers = metadata.get_all("Classifier") or []
    for version in SUPPORTED:
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert "curate = curate.cli:main" in entry_points
    assert "curate = curate.pytest_plugin" in entry_points


WORKFLOW_SCRIPT = '''
"""A workflow from the installed curate alone: its table and curate's, queue, run once."""

import asyncio
from importlib.metadata import version

import curate
from curate.db.own_tables import create_own_tables
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Note(curate.workflow_mixin("wordcount"), Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    words: Mapped[int | None]


async def process_single_wordcount(item_id: int, session: AsyncSession) -> None:
    note = await session.get(Note, item_id)
    note.words = len(note.body.split())


wordcount = curate.Workflow("wordcount", model=Note, service=process_single_wordcount)


async def main() -> None:
    runtime = curate.configure()  # CURATE_DATABASE_URL
    engine = await runtime.database.engine()
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await create_own_tables(conn)
    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(Note), [{"id": n, "body": "word " * n} for n in (1, 2, 3)])
        await curate.queue(session, wordcount, [1, 2, 3])
    result = await wordcount.run()
    print(f"curate-workflows {version('curate-workflows')} from {curate.__file__}")
    print(f"claimed {result.claimed}: {result.completed} complete, {result.failed} failed")
    await runtime.close()


asyncio.run(main())
'''


async def _notes(database_url: str) -> list[tuple[int, str, int | None]]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id, wordcount_status::text, words FROM notes ORDER BY id")
            )
            return [(row[0], row[1], row[2]) for row in rows]
    finally:
        await engine.dispose()


def test_the_installed_wheel_runs_the_command_and_a_workflow(
    built: Built, curate_database: str, tmp_path: Path
) -> None:
    """In a virtualenv that has nothing of the repository: the repository's own checkout
    on sys.path, or a file missing from the wheel, would show here."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CURATE_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(built.wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    helped = subprocess.run(
        [venv / "bin" / "curate", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0, helped.stderr
    for command in cli.commands:
        assert f"\n  {command} " in helped.stdout, (command, helped.stdout)

    script = tmp_path / "wordcount.py"
    script.write_text(textwrap.dedent(WORKFLOW_SCRIPT))
    ran = subprocess.run(
        [python, script],
        cwd=tmp_path,
        env=env | {"CURATE_DATABASE_URL": curate_database},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr[-3000:]
    assert f"curate-workflows {__version__} from {venv}/lib/" in ran.stdout, ran.stdout
    assert "claimed 3: 3 complete, 0 failed" in ran.stdout, ran.stdout
    assert asyncio.run(_notes(curate_database)) == [
        (1, "Complete", 1),
        (2, "Complete", 2),
        (3, "Complete", 3),
    ]
