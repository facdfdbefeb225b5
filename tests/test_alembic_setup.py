"""Alembic from scratch (`curate db init`), and curate's env.py in the set-ups `alembic init`
writes: run as a new user would, in copies of the sample project without its Alembic set-up,
revisions written by the real ``alembic`` command, migrated on real PostgreSQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from curate.scaffold.pysource import find_metadata_owner
from tests.test_docs import output_block
from tests.test_scaffold import (
    BIN,
    CREATE_PHOTOS,
    SAMPLE,
    alembic_revision,
    curate,
    photos_columns,
    run,
    snapshot,
)

SETUP = ("alembic.ini", "migrations/env.py", "migrations/script.py.mako")
"""The files of the set-up `curate db init` writes (and migrations/versions/)."""


def bare_copy(folder: Path) -> Path:
    """The sample project without alembic.ini and migrations/, in ``folder``."""
    copy = folder / "photoapp"
    shutil.copytree(SAMPLE, copy, ignore=shutil.ignore_patterns("alembic.ini", "migrations"))
    return copy


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    return bare_copy(tmp_path)


def docs_env_py() -> str:
    """The env.py the how-to shows, for the sample's package."""
    return output_block("db-init-env-py").replace("myapp", "photoapp") + "\n"


async def test_db_init_then_new_workflow_then_upgrade(
    bare: Path, database_url: str, schema: str, admin_engine: AsyncEngine
) -> None:
    init = curate(bare, "db", "init")
    assert init.returncode == 0, init.stdout + init.stderr
    shown = output_block("db-init").splitlines()
    assert shown[0] == "$ curate db init" and init.stdout.splitlines() == shown[1:]
    assert (bare / "migrations/versions").is_dir()
    ini_lines = (bare / "alembic.ini").read_text().splitlines()
    assert set(output_block("db-init-alembic-ini").splitlines()) <= set(ini_lines)
    assert not [line for line in ini_lines if line.startswith("sqlalchemy.url")]
    assert (bare / "migrations/env.py").read_text() == docs_env_py()

    alembic_revision(bare, "0001_photos", body=CREATE_PHOTOS)
    made = curate(bare, "new-workflow", "thumbnail", "--table", "photos")
    assert made.returncode == 0, made.stderr
    [migration] = (bare / "migrations/versions").glob("*_add_thumbnail_workflow.py")
    assert 'down_revision: str | None = "0001_photos"\n' in migration.read_text()
    lint = run(bare, str(BIN / "ruff"), "check", "migrations/env.py", str(migration), "src")
    assert lint.returncode == 0, lint.stdout + lint.stderr

    database = {"CURATE_DATABASE_URL": database_url, "CURATE_DATABASE_SCHEMA": schema}
    migrated = curate(bare, "db", "upgrade", env=database)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "thumbnail_status" in await photos_columns(admin_engine, schema)

    # The set-up stands on its own: plain alembic, from another folder, with curate's settings.
    alembic = str(BIN / "alembic")
    undone = run(bare / "src", alembic, "-c", "../alembic.ini", "downgrade", "base", env=database)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert await photos_columns(admin_engine, schema) == {"id", "url", "caption"}


def test_db_init_refuses_a_setup_that_exists(bare: Path) -> None:
    before = snapshot(bare)
    dry = curate(bare, "db", "init", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would create migrations/env.py" in dry.stdout
    assert "run_migrations(Base.metadata)" in dry.stdout
    assert snapshot(bare) == before

    assert curate(bare, "db", "init").returncode == 0
    before = snapshot(bare)
    again = curate(bare, "db", "init")
    assert again.returncode == 2, again.stdout + again.stderr
    assert "alembic.ini exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert snapshot(bare) == before

    (bare / "alembic.ini").unlink()  # a migrations/ folder the ini does not name
    before = snapshot(bare)
    orphan = curate(bare, "db", "init")
    assert orphan.returncode == 2, orphan.stdout + orphan.stderr
    assert "[tool.curate] alembic_ini" in orphan.stderr
    assert snapshot(bare) == before


def test_new_workflow_without_a_setup_writes_the_db_init_one(bare: Path, tmp_path: Path) -> None:
    initialised = bare_copy(tmp_path / "other")
    service_only = curate(
        initialised, "new-workflow", "thumbnail", "--table", "photos", "--service-only"
    )
    assert service_only.returncode == 0, service_only.stderr
    assert not (initialised / "alembic.ini").exists()  # no migration, so no set-up
    assert curate(initialised, "db", "init").returncode == 0

    made = curate(bare, "new-workflow", "thumbnail", "--table", "photos")
    assert made.returncode == 0, made.stderr
    assert "create alembic.ini\ncreate migrations/env.py\n" in made.stdout
    for name in SETUP:
        assert (bare / name).read_text() == (initialised / name).read_text(), name
    [migration] = (bare / "migrations/versions").glob("*_add_thumbnail_workflow.py")
    assert "down_revision: str | None = None\n" in migration.read_text()


@pytest.mark.parametrize("ini", ["stock", "without logging sections"])
async def test_curates_env_py_in_an_alembic_init_setup(
    bare: Path, ini: str, database_url: str, schema: str, admin_engine: AsyncEngine
) -> None:
    init = run(bare, str(BIN / "alembic"), "init", "migrations")
    assert init.returncode == 0, init.stdout + init.stderr
    assert "sqlalchemy.url = driver://" in (bare / "alembic.ini").read_text()  # a placeholder
    if ini != "stock":
        (bare / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    (bare / "migrations/env.py").write_text(docs_env_py())
    alembic_revision(bare, "0001_photos", body=CREATE_PHOTOS)

    database = {"CURATE_DATABASE_URL": database_url, "CURATE_DATABASE_SCHEMA": schema}
    migrated = curate(bare, "db", "upgrade", env=database)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "now at 0001_photos (head)" in migrated.stdout
    assert await photos_columns(admin_engine, schema) == {"id", "url", "caption"}
    # The stock ini's logging sections apply: its alembic logger shows INFO.
    ran = "Running upgrade  -> 0001_photos" in migrated.stderr
    assert ran == (ini == "stock"), migrated.stderr


@pytest.mark.parametrize(
    ("models", "owner"),
    [
        ("class Base(DeclarativeBase):\n    pass\n", "Base"),
        ("class Model(orm.DeclarativeBaseNoMeta):\n    pass\n", "Model"),
        ("Base = declarative_base()\n", "Base"),
        ("from app.db import Base\n\nclass Photo(Base):\n    __tablename__ = 'photos'\n", "Photo"),
        ("from app.db import Base\n", None),  # env.py then passes None, and says why
    ],
)
def test_env_py_finds_the_models_metadata(models: str, owner: str | None) -> None:
    assert find_metadata_owner(models) == owner
