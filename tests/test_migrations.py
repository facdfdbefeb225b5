"""The demo's Alembic migrations on real PostgreSQL: upgrade → downgrade → upgrade."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate.demo import schema as demo_schema
from curate.sql import own_tables as own_tables_sql
from tests.helpers import run_migration_step

TABLES = {
    "domains": "sitemap_discovery",
    "sitemap_files": "sitemap_import",
    "pages": "page_curation",
}
"""Each demo table and the workflow 0001 gave it."""
WORKFLOWS = [*TABLES.items(), ("sitemap_files", "sitemap_finalise")]  # 0006: a fan-in
WORKFLOW_COLUMN_SUFFIXES = (
    "status",
    "error",
    "attempts",
    "run_after",
    "claimed_by",
    "lease_until",
    "priority",
    "snoozes",
)
ENUM_TYPES = {"curation_status", *(f"{prefix}_status" for _, prefix in WORKFLOWS)}
CURATE_TABLES = set(own_tables_sql.TABLES)  # 0003, 0005
QUEUED_INDEXES = {f"ix_{table}_{prefix}_queued" for table, prefix in WORKFLOWS}
PROCESSING_INDEXES = {f"ix_{table}_{prefix}_processing" for table, prefix in WORKFLOWS}
FAN_IN_INDEX = "curate_fan_in_sitemap_finalise_waiting"  # 0006


@pytest.fixture
async def migrator(settings: curate.CurateSettings) -> AsyncIterator[curate.Runtime]:
    runtime = curate.configure(settings)
    yield runtime
    await runtime.close()


async def catalog(engine: AsyncEngine, schema_name: str) -> dict[str, set[str]]:
    """Tables, columns, enum types and partial indexes of ``schema_name``."""
    queries = {
        "tables": "SELECT table_name FROM information_schema.tables WHERE table_schema = :s",
        "columns": "SELECT table_name || '.' || column_name FROM information_schema.columns"
        " WHERE table_schema = :s",
        "enums": "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        " WHERE n.nspname = :s AND t.typtype = 'e'",
        "partial_indexes": "SELECT indexname || ': ' || indexdef FROM pg_indexes"
        " WHERE schemaname = :s AND indexdef LIKE '% WHERE %'"
        " AND tablename NOT LIKE 'curate\\_%'",
        "versions": "SELECT version_num FROM alembic_version",
    }
    found: dict[str, set[str]] = {}
    async with engine.connect() as conn:
        await conn.execute(text(f"SET search_path TO {schema_name}"))
        for name, query in queries.items():
            found[name] = set((await conn.execute(text(query), {"s": schema_name})).scalars())
    return found


async def test_upgrade_downgrade_upgrade(
    migrator: curate.Runtime, admin_engine: AsyncEngine, schema: str
) -> None:
    async with admin_engine.begin() as conn:  # the fixture made them: 0003 must
        for table in CURATE_TABLES:
            await conn.execute(text(f"DROP TABLE {schema}.{table}"))
    await demo_schema.upgrade(migrator)
    found = await catalog(admin_engine, schema)
    assert found["tables"] == {*TABLES, *CURATE_TABLES, "alembic_version"}
    assert found["versions"] == {"0006"}
    for table, prefix in WORKFLOWS:
        for suffix in WORKFLOW_COLUMN_SUFFIXES:
            assert f"{table}.{prefix}_{suffix}" in found["columns"]
        assert f"{table}.curation_status" in found["columns"]
        assert f"{table}.updated_at" in found["columns"]
    assert found["enums"] == ENUM_TYPES
    indexes = {index.split(":")[0]: index for index in found["partial_indexes"]}
    assert indexes.keys() == QUEUED_INDEXES | PROCESSING_INDEXES | {FAN_IN_INDEX}
    for name in QUEUED_INDEXES:
        assert "_status = 'Queued'" in indexes[name] and "_priority DESC, id)" in indexes[name]
    for name in PROCESSING_INDEXES:
        assert "_status = 'Processing'" in indexes[name] and "(id)" in indexes[name]

    await demo_schema.downgrade(migrator)
    found = await catalog(admin_engine, schema)
    assert found["tables"] == {"alembic_version"}
    assert found["versions"] == set()
    assert found["enums"] == set()
    assert found["partial_indexes"] == set()

    await demo_schema.upgrade(migrator)
    found = await catalog(admin_engine, schema)
    assert found["tables"] == {*TABLES, *CURATE_TABLES, "alembic_version"}
    assert found["enums"] == ENUM_TYPES
    assert len(found["partial_indexes"]) == 9


async def test_add_missing_workflow_columns_upgrades_a_table_made_by_an_older_curate(
    migrator: curate.Runtime, admin_engine: AsyncEngine, schema: str
) -> None:
    await demo_schema.upgrade(migrator, "0001")
    async with admin_engine.begin() as conn:  # what 0001 made before curate had priorities
        for table, prefix in TABLES.items():
            await conn.execute(text(f"ALTER TABLE {schema}.{table} DROP COLUMN {prefix}_priority"))
            await conn.execute(text(f"DROP INDEX {schema}.ix_{table}_{prefix}_processing"))
    assert not any("priority" in c for c in (await catalog(admin_engine, schema))["columns"])

    await demo_schema.upgrade(migrator, "0002")  # add_missing_workflow_columns

    found = await catalog(admin_engine, schema)
    for table, prefix in TABLES.items():
        assert f"{table}.{prefix}_priority" in found["columns"]
    made_by_0001 = {
        f"ix_{table}_{prefix}_{kind}"
        for table, prefix in TABLES.items()
        for kind in ("queued", "processing")
    }
    assert {index.split(":")[0] for index in found["partial_indexes"]} == made_by_0001
    assert all(
        "_priority DESC, id)" in index for index in found["partial_indexes"] if "_queued" in index
    )


def test_missing_migrations_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(curate.ConfigurationError, match="migrations were not found"):
        demo_schema.alembic_ini(tmp_path)


async def test_a_fillfactor_is_a_percentage(engine: AsyncEngine) -> None:
    from curate.migrations import set_fillfactor

    with pytest.raises(ValueError, match="fillfactor must be a percentage from 10 to 100, not 5"):
        await run_migration_step(engine, lambda: set_fillfactor("items", 5))
    await run_migration_step(engine, lambda: set_fillfactor("items", 10))
    async with engine.connect() as conn:
        options = await conn.scalar(
            text("SELECT reloptions FROM pg_class WHERE oid = 'items'::regclass")
        )
    assert options == ["fillfactor=10"]
