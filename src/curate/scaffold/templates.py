"""The text of the files `curate new-workflow` writes (rendered with `str.format`)."""

from __future__ import annotations

SERVICE = '''"""The {name} workflow: the work on one row of {table} (no scheduling here)."""

{stdlib_import}from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from {models_module} import {model}


async def process_single_{name}(item_id: {pk_type}, session: AsyncSession) -> None:
    """Do the {name} work for one row.

    Writes made through ``session`` commit together with the row's Complete status. To
    fail, raise: the row is retried with backoff, then ends Error with the message (raise
    curate.NonRetryableError when trying again cannot help).
    """
    {variable} = await session.get_one({model}, item_id)
    # The business logic goes here: read {variable}, do the work, write results on it.
    logger.info("{name}: {model} {{}}", {variable}.{pk_name})
'''

SCHEDULER = '''"""The {name} workflow: its spec, and its job on the shared scheduler."""

from curate import Workflow, scheduling

from {models_module} import {model}
from {package}.services.{name}_service import process_single_{name}

{name}_workflow = Workflow(
    "{name}",
    model={model},
    service=process_single_{name},
    # Code defaults; the environment overrides them (see .env.example).
    batch_size=10,
    concurrency=1,
    interval_seconds=10.0,
)


async def process_pending_{name}s() -> None:
    """Job function: process the {table} rows queued for the {name} workflow."""
    await {name}_workflow.run()


def setup_{name}_scheduler() -> None:
    """Adds the {name} job to the shared scheduler."""
    scheduling.add_workflow_job({name}_workflow, process_pending_{name}s)
'''

REGISTRY = '''"""The app's workflows: the app's start-up and the curate CLI read this module.

`curate new-workflow` adds each new workflow here.
"""

from collections.abc import Callable

from curate import Workflow
{imports}
WORKFLOWS: list[Workflow] = [{workflows}]

SETUP_FUNCTIONS: list[Callable[[], None]] = [{setups}]


def setup_schedulers() -> None:
    """Add every workflow's job to the shared scheduler (call at start-up)."""
    for setup in SETUP_FUNCTIONS:
        setup()
'''

COLUMNS_MODULE = '''"""The workflows' columns: one mixin each, written by curate new-workflow.

Each mixin is a base of its model; the matching migration adds the columns with
curate.migrations.add_workflow_columns.
"""

from datetime import datetime

from curate import ProcessingStatus
from curate.columns import status_type
from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column
'''

COLUMNS_CLASS = '''

class {mixin}:
    """Columns of the {name} workflow: its status and curate's bookkeeping."""

{columns}'''

MIGRATION = '''"""Add the {name} workflow to {table}.{own_tables_note}

Revision ID: {revision}
Revises: {down_revision}
"""

{imports}

revision: str = "{revision}"
down_revision: str | None = {down_revision_literal}
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
{create_own_tables}    add_workflow_columns("{table}", "{name}")


def downgrade() -> None:
    drop_workflow_columns("{table}", "{name}")
{drop_own_tables}'''

OWN_TABLES_NOTE = """

With curate's own tables (pause, rate limits, periodic runs): the first of the project's
migrations to need them."""
"""Ends the docstring of the migration that also creates curate's own tables."""

TEST = '''"""The {name} workflow against a real PostgreSQL (curate's pytest plugin provides it)."""

from curate import ProcessingStatus, Runtime

from {models_module} import {model}
from {package}.services.{name}_scheduler import {name}_workflow


async def test_{name}_completes_a_queued_row(curate_runtime: Runtime) -> None:
    engine = await curate_runtime.database.engine()
    async with engine.begin() as connection:
        await connection.run_sync({model}.metadata.create_all)
    sessions = await curate_runtime.database.sessionmaker()
    async with sessions() as session, session.begin():
        {variable} = {model}({sample})
        session.add({variable})
        await session.flush()
        await {name}_workflow.queue(session, [{variable}.{pk_name}])

    result = await {name}_workflow.run(curate_runtime)

    assert (result.completed, result.failed) == (1, 0)
    async with sessions() as session:
        done = await session.get_one({model}, {variable}.{pk_name})
        assert done.{name}_status is ProcessingStatus.Complete
'''

PYTEST_SETTINGS = """[tool.pytest.ini_options]
# Written by curate new-workflow for the generated tests (they need pytest-asyncio):
# async tests without markers, and the package importable before the project is installed.
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
{pythonpath}"""

ENV_PY = '''"""Alembic's environment: curate's (curate.alembic_env).

The database comes from curate's settings: CURATE_DATABASE_URL (unset: the embedded
PostgreSQL) and CURATE_DATABASE_SCHEMA.
"""

from curate.alembic_env import run_migrations
{models}'''

ENV_PY_MODELS = """
from {module} import {owner}

run_migrations({owner}.metadata)
"""

ENV_PY_NO_MODELS = """
# No declarative base found in {module}: pass your models' metadata here (such as
# Base.metadata) for alembic revision --autogenerate to compare them with the database.
run_migrations(None)
"""

INI_DATABASE = (
    "# The database is curate's: CURATE_DATABASE_URL (unset: the embedded PostgreSQL)\n"
    "# and CURATE_DATABASE_SCHEMA, read by migrations/env.py (curate.alembic_env).\n"
    "# A sqlalchemy.url set here would win over them.\n"
    "# sqlalchemy.url ="
)
"""In place of the placeholder URL of a stock alembic.ini."""
