"""`curate new-workflow` used as a new user would: in a copy of a sample project.

The generated code must pass the project's own ruff and mypy, its migration must apply,
and its generated test must pass against real PostgreSQL, all without edits.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from curate.settings import WorkflowSettings
from curate.sql import own_tables as own_tables_sql

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "photoapp"
BIN = Path(sys.executable).parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "photoapp"
    shutil.copytree(SAMPLE, copy)
    return copy


def run(
    project: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_")}
    return subprocess.run(
        args,
        cwd=project,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        input=input,
    )


def curate(project: Path, *args: str, **kwargs: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(project, str(BIN / "curate"), *args, **kwargs)  # type: ignore[arg-type]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


CREATE_PHOTOS = """    op.create_table(
        "photos",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.String(200), nullable=False),
        sa.Column("caption", sa.Text, nullable=True),
    )
"""
"""The photos table of the sample project's models, as a migration's upgrade creates it."""


def alembic_revision(project: Path, rev_id: str, *options: str, body: str = "") -> Path:
    """A revision written by the real ``alembic revision`` command, its upgrade ``body``
    filled in (Alembic's stock template leaves ``pass``); its file."""
    done = run(
        project, str(BIN / "alembic"), "revision", "-m", rev_id, "--rev-id", rev_id, *options
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [path] = (project / "migrations/versions").glob(f"{rev_id}_*.py")
    if body:
        source = path.read_text()
        upgrade = source.index("def upgrade() -> None:")
        at = source.index("    pass\n", upgrade)
        path.write_text(source[:at] + body + source[at + len("    pass\n") :])
    return path


async def photos_columns(admin_engine: AsyncEngine, schema: str) -> set[str]:
    """The columns of the photos table in ``schema`` (none: no such table)."""
    query = text(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = :schema AND table_name = 'photos'"
    )
    async with admin_engine.connect() as conn:
        return set(await conn.scalars(query, {"schema": schema}))


async def test_a_scaffolded_workflow_passes_lint_types_migration_and_its_own_test(
    project: Path, database_url: str, schema: str, admin_engine: AsyncEngine
) -> None:
    made = curate(project, "new-workflow", "thumbnail", "--table", "photos")
    assert made.returncode == 0, made.stderr
    for path in (
        "src/photoapp/services/thumbnail_scheduler.py",
        "src/photoapp/services/thumbnail_service.py",
        "src/photoapp/workflow_columns.py",
        "tests/test_thumbnail_workflow.py",
        ".env.example",
    ):
        assert (project / path).is_file(), path
    scheduler = (project / "src/photoapp/services/thumbnail_scheduler.py").read_text()
    assert "async def process_pending_thumbnails() -> None:" in scheduler
    assert "def setup_thumbnail_scheduler() -> None:" in scheduler
    assert "THUMBNAIL_SCHEDULER_BATCH_SIZE=10" in (project / ".env.example").read_text()

    for check in ([str(BIN / "ruff"), "check", "."], [str(BIN / "mypy")]):
        done = run(project, *check)
        assert done.returncode == 0, done.stdout + done.stderr

    database = {"CURATE_DATABASE_URL": database_url, "CURATE_DATABASE_SCHEMA": schema}
    async with admin_engine.begin() as conn:  # the fixture made them: the migration must
        for table in own_tables_sql.TABLES:
            await conn.execute(text(f"DROP TABLE {schema}.{table}"))
    migrated = curate(project, "db", "upgrade", env=database)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    own_tables = ", ".join(own_tables_sql.TABLES) + " already there"
    assert migrated.stdout.endswith(f"curate's tables: {own_tables}\n"), migrated.stdout
    assert {"thumbnail_status", "thumbnail_lease_until"} <= await photos_columns(
        admin_engine, schema
    )

    tested = run(project, str(BIN / "pytest"), "-q", env={"CURATE_TEST_DATABASE_URL": database_url})
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout
    # The project configures pytest itself: its settings stand.
    assert (project / "pyproject.toml").read_text() == (SAMPLE / "pyproject.toml").read_text()


def test_a_project_that_says_nothing_to_pytest_gets_what_the_generated_test_needs(
    project: Path, database_url: str
) -> None:
    """A new user's pyproject.toml has no pytest table: the generated test still runs under a
    plain ``pytest`` (auto mode for its async test, src/ importable)."""
    pyproject = project / "pyproject.toml"
    own = pyproject.read_text()
    start = own.index("[tool.pytest.ini_options]")
    without = own[:start] + own[own.index("[tool.ruff]", start) :]
    pyproject.write_text(without)

    made = curate(project, "new-workflow", "thumbnail", "--table", "photos")
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[-1].endswith("(pytest, with pytest-asyncio installed)")
    added = pyproject.read_text().removeprefix(without.rstrip("\n") + "\n\n")
    assert tomllib.loads(added)["tool"]["pytest"]["ini_options"] == {
        "asyncio_mode": "auto",
        "asyncio_default_fixture_loop_scope": "function",
        "pythonpath": ["src"],
    }
    tested = run(project, str(BIN / "pytest"), "-q", env={"CURATE_TEST_DATABASE_URL": database_url})
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout


def test_a_second_workflow_joins_the_registry(project: Path) -> None:
    assert curate(project, "new-workflow", "thumbnail", "--table", "photos").returncode == 0
    second = curate(project, "new-workflow", "caption_check", "--model", "photoapp.models:Photo")
    assert second.returncode == 0, second.stderr
    [first_migration] = (project / "migrations/versions").glob("*_add_thumbnail_workflow.py")
    [second_migration] = (project / "migrations/versions").glob("*_add_caption_check_workflow.py")
    assert "    create_curate_tables()\n" in first_migration.read_text()  # once per project
    assert "create_curate_tables" not in second_migration.read_text()
    registry = (project / "src/photoapp/services/workflows.py").read_text()
    assert registry.index("caption_check_workflow,") < registry.index("thumbnail_workflow,")
    models = (project / "src/photoapp/models.py").read_text()
    assert "class Photo(CaptionCheckColumns, ThumbnailColumns, Base):" in models
    for check in ([str(BIN / "ruff"), "check", "."], [str(BIN / "mypy")]):
        done = run(project, *check)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["Thumbnail", "--table", "photos"], "not a lower snake_case identifier"),
        (["2fast", "--table", "photos"], "not a lower snake_case identifier"),
        (["class", "--table", "photos"], "is a Python keyword"),
        (["json", "--table", "photos"], "standard-library module name"),
        (["photoapp", "--table", "photos"], "would shadow the package"),
        (["thumbnail"], "--table or --model"),
        (["thumbnail", "--table", "nope"], '__tablename__ = "nope"'),
        (["thumbnail", "--model", "photoapp.models"], "must look like module:Class"),
        (["thumbnail", "--table", "photos", "--package", "../../etc"], "outside the project"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    project: Path, arguments: list[str], message: str
) -> None:
    before = snapshot(project)
    done = curate(project, "new-workflow", *arguments)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(project) == before


def test_outside_a_project_it_says_where_to_run(tmp_path: Path) -> None:
    done = curate(tmp_path, "new-workflow", "thumbnail", "--table", "photos")
    assert done.returncode == 2
    assert "no pyproject.toml" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_workflows_are_never_overwritten_without_force(project: Path) -> None:
    assert curate(project, "new-workflow", "thumbnail", "--table", "photos").returncode == 0
    service = project / "src/photoapp/services/thumbnail_service.py"
    service.write_text(service.read_text() + "# my business logic\n")
    before = snapshot(project)

    again = curate(project, "new-workflow", "thumbnail", "--table", "photos")
    assert again.returncode == 2 and "--force" in again.stderr
    assert snapshot(project) == before

    forced = curate(
        project, "new-workflow", "thumbnail", "--table", "photos", "--force", "--service-only"
    )
    assert forced.returncode == 0, forced.stderr
    assert "# my business logic" not in service.read_text()


def test_dry_run_prints_and_writes_nothing(project: Path) -> None:
    before = snapshot(project)
    done = curate(project, "new-workflow", "thumbnail", "--table", "photos", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would create src/photoapp/services/thumbnail_scheduler.py" in done.stdout
    assert "would update src/photoapp/models.py" in done.stdout
    assert "async def process_single_thumbnail" in done.stdout
    assert snapshot(project) == before


def test_a_registry_edited_by_hand_is_not_rewritten(project: Path) -> None:
    assert curate(project, "new-workflow", "thumbnail", "--table", "photos").returncode == 0
    registry = project / "src/photoapp/services/workflows.py"
    registry.write_text(registry.read_text() + "\nEXTRA = 1\n")
    before = snapshot(project)
    done = curate(project, "new-workflow", "caption_check", "--table", "photos")
    assert done.returncode == 2
    assert "edited by hand" in done.stderr
    assert snapshot(project) == before


# --- any Alembic history ----------------------------------------------------------------------

PLAIN_PHOTOS = f'''"""Create the photos table."""
from alembic import op
import sqlalchemy as sa

revision = "0001_photos"
down_revision = None


def upgrade():
{CREATE_PHOTOS}

def downgrade():
    op.drop_table("photos")
'''
"""A first revision as a person writes it: plain assignments, no annotations."""


def _history(project: Path, style: str) -> str | None:
    """Replace the sample's history by one in ``style``; its head."""
    for path in (project / "migrations/versions").glob("*.py"):
        path.unlink()
    if style == "plain":
        (project / "migrations/versions/0001_photos.py").write_text(PLAIN_PHOTOS)
    elif style == "annotated":
        alembic_revision(project, "0001_photos", body=CREATE_PHOTOS)
    elif style == "branch label":
        alembic_revision(project, "0001_photos", "--branch-label", "photoapp", body=CREATE_PHOTOS)
    return None if style == "empty" else "0001_photos"


@pytest.mark.parametrize("style", ["plain", "annotated", "branch label", "empty"])
async def test_the_migration_follows_the_head_of_any_history(
    project: Path, style: str, database_url: str, schema: str, admin_engine: AsyncEngine
) -> None:
    head = _history(project, style)
    made = curate(project, "new-workflow", "thumbnail", "--table", "photos")
    assert made.returncode == 0, made.stderr
    [migration] = (project / "migrations/versions").glob("*_add_thumbnail_workflow.py")
    down = f'"{head}"' if head else "None"
    assert f"down_revision: str | None = {down}\n" in migration.read_text()

    if head is None:  # no migration creates the table
        async with admin_engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {schema}.photos (id int PRIMARY KEY)"))
    database = {"CURATE_DATABASE_URL": database_url, "CURATE_DATABASE_SCHEMA": schema}
    migrated = curate(project, "db", "upgrade", env=database)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert f"now at {migration.name.partition('_')[0]} (head)" in migrated.stdout
    assert "thumbnail_status" in await photos_columns(admin_engine, schema)


def test_several_heads_are_refused_until_merged(project: Path) -> None:
    alembic_revision(project, "0002_tags")
    alembic_revision(project, "0002_albums", "--head", "base")  # a second root: two heads
    before = snapshot(project)

    refused = curate(project, "new-workflow", "thumbnail", "--table", "photos")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "several heads (0002_albums, 0002_tags)" in refused.stderr
    assert "alembic merge heads" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert snapshot(project) == before

    merged = run(project, str(BIN / "alembic"), "merge", "heads", "-m", "merge", "--rev-id", "0003")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    made = curate(project, "new-workflow", "thumbnail", "--table", "photos")
    assert made.returncode == 0, made.stderr
    [migration] = (project / "migrations/versions").glob("*_add_thumbnail_workflow.py")
    assert 'down_revision: str | None = "0003"\n' in migration.read_text()


def test_every_setting_of_env_example_loads_uncommented(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = curate(project, "new-workflow", "summarize", "--table", "photos", "--service-only")
    assert made.returncode == 0, made.stderr
    example = (project / ".env.example").read_text()
    settings = [line[2:] for line in example.splitlines() if re.match(r"# [A-Z0-9_]+=", line)]
    prefix = WorkflowSettings.env_prefix_for("summarize")
    assert sorted(line.partition("=")[0] for line in settings) == sorted(
        f"{prefix}{field.upper()}" for field in WorkflowSettings.model_fields
    )
    (project / ".env").write_text("\n".join(settings) + "\n")
    monkeypatch.chdir(project)  # the settings read .env from the working directory

    loaded = WorkflowSettings.load("summarize")

    for name, value in (line.split("=") for line in settings):
        assert getattr(loaded, name.removeprefix(prefix).lower()) == float(value), name
