"""The claim's index wherever a workflow's columns come from.

A table made from the models (``create_all``, as the test harness and many apps do) gets the
same partial index on its queued rows as one made by the migration helpers, Alembic's
autogenerate sees no difference between the two, and the start-up check warns about a
workflow's table without it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import ops
from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import curate
from curate import ProcessingStatus, Workflow, workflow_columns, workflow_mixin
from curate.columns import status_type
from curate.migrations import add_workflow_columns, create_curate_tables
from curate.preflight import check_at_start, unmigrated
from tests.helpers import noop, run_migration_step
from tests.models import Item

INDEX = "ix_items_work_queued"


async def index_definitions(engine: AsyncEngine, schema: str, table: str) -> dict[str, str]:
    """Each index of ``table`` in ``schema``: its definition, the schema's name left out."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = :schema AND tablename = :table"
            ),
            {"schema": schema, "table": table},
        )
        return {name: definition.replace(f"{schema}.", "") for name, definition in rows}


def items_by_migration() -> None:
    """The test table made the documented migration way: its own columns, then the
    workflow's with `add_workflow_columns`."""
    from alembic import op

    op.create_table(
        "items",
        Column("id", Integer, primary_key=True),
        Column("payload", String(100)),
        Column("updated_at", DateTime(timezone=True), server_default=text("now()")),
    )
    add_workflow_columns("items", "work")
    create_curate_tables()


async def test_create_all_makes_the_index_the_migration_makes(
    engine: AsyncEngine, schema: str, admin_engine: AsyncEngine
) -> None:
    made_by_models = await index_definitions(admin_engine, schema, "items")  # create_all
    assert made_by_models[INDEX] == (
        f"CREATE INDEX {INDEX} ON items USING btree (work_priority DESC, id)"
        " WHERE (work_status = 'Queued'::work_status)"
    )

    migrated = f"{schema}_migrated"
    async with admin_engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{migrated}"'))
    try:
        async with admin_engine.connect() as conn:
            await conn.execute(text(f'SET search_path TO "{migrated}"'))
            await conn.run_sync(_migrate)
            await conn.commit()
            differences = await conn.run_sync(_autogenerate_against_models)
        made_by_migration = await index_definitions(admin_engine, migrated, "items")
    finally:
        async with admin_engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{migrated}" CASCADE'))

    assert made_by_migration == made_by_models
    index_changes = [d for d in differences if d[0] in ("add_index", "remove_index")]
    assert index_changes == [], differences


def _migrate(connection: Connection) -> None:
    with ops.Operations.context(MigrationContext.configure(connection)):
        items_by_migration()


def _autogenerate_against_models(connection: Connection) -> list[Any]:
    """What Alembic's autogenerate would write to bring the migrated schema to the models."""
    items_only = MetaData()
    Item.__table__.to_metadata(items_only)
    context = MigrationContext.configure(
        connection,
        opts={"include_name": lambda name, kind, parent: kind != "table" or name == "items"},
    )
    return list(compare_metadata(context, items_only))


def test_every_way_of_declaring_the_columns_declares_the_index() -> None:
    """The mixin, `workflow_columns` in a plain Table, and the typed columns the scaffold
    writes (`status_type` and the priority column): the same two indexes each."""

    class Declared(DeclarativeBase):
        pass

    class Typed:  # as curate new-workflow writes a model's columns
        work_status: Mapped[ProcessingStatus | None] = mapped_column(status_type("work"))
        work_error: Mapped[str | None] = mapped_column(Text)
        work_run_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
        work_priority: Mapped[int] = mapped_column(server_default="0")

    class Scaffolded(Typed, Declared):
        __tablename__ = "scaffolded"
        id: Mapped[int] = mapped_column(primary_key=True)

    plain = Table(
        "plain", MetaData(), Column("id", Integer, primary_key=True), *workflow_columns("work")
    )
    for table in (Item.__table__, Scaffolded.__table__, plain):
        queued, processing = sorted(table.indexes, key=lambda index: -len(index.expressions))
        assert queued.name == f"ix_{table.name}_work_queued"
        assert [str(e) for e in queued.expressions] == [
            f"{table.name}.work_priority DESC",
            f"{table.name}.id",
        ]
        assert str(queued.dialect_options["postgresql"]["where"]) == "work_status = 'Queued'"
        assert processing.name == f"ix_{table.name}_work_processing"
        assert [str(e) for e in processing.expressions] == [f"{table.name}.id"]
        where = str(processing.dialect_options["postgresql"]["where"])
        assert where == "work_status = 'Processing'"
    copy = plain.to_metadata(MetaData())
    assert sorted(index.name for index in copy.indexes) == [
        "ix_plain_work_processing",
        "ix_plain_work_queued",
    ]


def test_a_models_own_choice_stands() -> None:
    """An index of the same name in the model wins; ``queued_index`` names another order
    column or declares none; a table without the priority column or a single primary key
    gets none (the migration helpers' ``order_by`` and ``priority`` cover those)."""

    class Declared(DeclarativeBase):
        pass

    class Own(workflow_mixin("work"), Declared):  # type: ignore[misc]
        __tablename__ = "own"
        __table_args__ = (Index("ix_own_work_queued", "work_status"),)
        id: Mapped[int] = mapped_column(primary_key=True)

    class ByDate(workflow_mixin("work", queued_index="updated_at"), Declared):  # type: ignore[misc]
        __tablename__ = "by_date"
        id: Mapped[int] = mapped_column(primary_key=True)
        updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    class Without(workflow_mixin("work", queued_index=False), Declared):  # type: ignore[misc]
        __tablename__ = "without"
        id: Mapped[int] = mapped_column(primary_key=True)

    indexes = {index.name: index for index in Own.__table__.indexes}
    assert [c.name for c in indexes["ix_own_work_queued"].columns] == ["work_status"]
    assert [c.name for c in indexes["ix_own_work_processing"].columns] == ["id"]
    indexes = {index.name: index for index in ByDate.__table__.indexes}
    assert [str(e) for e in indexes["ix_by_date_work_queued"].expressions] == [
        "by_date.work_priority DESC",
        "by_date.updated_at",
    ]
    assert [str(e) for e in indexes["ix_by_date_work_processing"].expressions] == [
        "by_date.updated_at"
    ]
    assert Without.__table__.indexes == set()
    composite = Table(
        "composite",
        MetaData(),
        Column("a", Integer, primary_key=True),
        Column("b", Integer, primary_key=True),
        *workflow_columns("work"),
    )
    assert composite.indexes == set()


async def test_the_start_up_check_warns_about_a_table_without_it(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    work = Workflow("work", model=Item, service=noop)
    indexed = await unmigrated(runtime.database, [work])
    assert not indexed and indexed.unindexed == ()  # made by create_all: it has the index

    async with engine.begin() as conn:
        await conn.execute(text(f"DROP INDEX {INDEX}"))
    found = await unmigrated(runtime.database, [work])
    assert not found  # nothing missing that stops a claim: a warning, not an error
    [line] = found.unindexed
    assert line.startswith("workflow work: table items in schema ") and line.endswith(
        "has no index on its Queued rows (a partial index WHERE work_status = 'Queued'),"
        " so each claim reads more of the table as it grows; add it in a migration"
        " (curate.migrations.create_queued_index('items', <prefix>) for a workflow's"
        " standard columns)"
    )
    await check_at_start(runtime.database, [work], require=True)  # a warning: it starts
    assert [entry for entry in log_lines if line in entry and "WARNING" in entry]

    async with engine.begin() as conn:
        await conn.execute(text("DROP INDEX ix_items_work_processing"))
    [_, processing] = (await unmigrated(runtime.database, [work])).unindexed
    assert processing.endswith(
        "has no index on its Processing rows (a partial index WHERE work_status ="
        " 'Processing'), so each rescue of expired leases reads the whole table; add it in a"
        " migration (curate.migrations.create_processing_index('items', <prefix>) for a"
        " workflow's standard columns)"
    )


async def test_a_mixin_table_made_by_create_all_takes_the_migrations_index_step(
    engine: AsyncEngine,
) -> None:
    """The helpers stay safe to call on a table made from the models: no "already exists"."""
    from curate.migrations import create_processing_index, create_queued_index

    await run_migration_step(engine, lambda: create_queued_index("items", "work"))
    await run_migration_step(engine, lambda: create_processing_index("items", "work"))
    async with engine.connect() as conn:
        names = await conn.scalars(
            text(
                "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_items_work_%'"
                " AND schemaname = current_schema()"
            )
        )
        assert sorted(names) == ["ix_items_work_processing", INDEX]
