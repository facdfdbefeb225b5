"""The docs are executed: their examples run on real PostgreSQL and their tables match the code.

Markers in docs/**/*.md, on the line above a fenced block or a table:

- ``<!-- include: examples/x.py -->``: the block is that file;
  ``<!-- include: examples/x.py#name -->`` the lines between ``# docs: start name`` and
  ``# docs: end name`` in it. Every file under docs/examples is executed by a test below.
- ``<!-- not-run: reason -->``: the block is an illustration, not executed.
- ``<!-- output: key -->``: a block that a test compares with real output (a file curate
  writes, for one); a python block so marked is run by that test too.
- ``<!-- settings-table: curate -->``, ``<!-- settings-table: workflow -->``,
  ``<!-- columns-table -->``, ``<!-- params-table: module.name -->``: tables whose leading
  cells are generated from the code (settings models, workflow columns, a signature).

Every ```python block needs an include, an output or a not-run marker. After editing an
example or a settings model, ``.venv/bin/python -m tests.test_docs --write`` rewrites the
included blocks and the generated cells of the tables.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
import inspect
import os
import re
import signal
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic.fields import FieldInfo
from sqlalchemy import Enum as SAEnum
from sqlalchemy import insert, select, text, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import operations, scheduling
from curate.engine.error_text import ERROR_MAX_LENGTH
from curate.settings import CurateSettings, WorkflowSettings
from curate.sql import own_tables as own_tables_sql
from curate.testing import WorkflowHarness, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

# Each example file and the test that executes it (``module.test`` for another test module).
EXECUTED_BY = {
    "photos/models.py": "test_tutorial_run_once",
    "photos/services/thumbnail_service.py": "test_tutorial_run_once",
    "photos/services/thumbnail_scheduler.py": "test_tutorial_scheduler",
    "photos/services/curation_service.py": "test_tutorial_run_once",
    "photos/app.py": "test_fastapi_app",
    "photos/worker.py": "test_photos_worker_process",
    "tutorial_run_once.py": "test_tutorial_run_once",
    "tutorial_scheduler.py": "test_tutorial_scheduler",
    "seed_port/models.py": "test_docs_seed_port.test_the_ported_app",
    "seed_port/settings.py": "test_docs_seed_port.test_the_ported_app",
    "seed_port/scheduler_instance.py": "test_docs_seed_port.test_the_ported_app",
    "seed_port/main.py": "test_docs_seed_port.test_the_ported_app",
    "seed_port/sitemap_import_service.py": "test_docs_seed_port.test_the_ported_app",
    "seed_port/sitemap_import_scheduler.py": "test_docs_seed_port.test_the_ported_app",
    "seed_port/page_curation_service.py": "test_docs_seed_port.test_the_ported_app",
    "seed_port/page_curation_scheduler.py": "test_docs_seed_port.test_the_ported_app",
    "seed_port/page_curation_workflow.py": "test_docs_seed_port.test_the_next_step_workflow",
    "articles/models.py": "test_docs_articles.test_articles_examples",
    "articles/workflows.py": "test_docs_articles.test_articles_examples",
    "articles/queueing.py": "test_docs_articles.test_articles_examples",
    "articles/middleware.py": "test_docs_articles.test_articles_examples",
    "articles/admin.py": "test_docs_articles.test_articles_examples",
    "migrations/0001_create_photos.py": "test_migrations_up_down_up",
    "migrations/0002_add_thumbnail_workflow.py": "test_migrations_up_down_up",
    "migrations/0003_leave_room_for_hot_updates.py": "test_migrations_up_down_up",
    "migrations/0004_snoozes_and_operator_tables.py": "test_migrating_an_older_database",
    "fan_in/orders.py": "test_docs_fan_in.test_fan_in_examples",
    "fan_in/add_shipping_fan_in.py": "test_docs_fan_in.test_fan_in_examples",
    "operate/supplier.py": "test_operate_examples",
    "operate/exports.py": "test_operate_examples",
    "operate/admin.py": "test_operate_examples",
    "periodic/photo_maintenance.py": "test_periodic.test_the_photo_maintenance_example",
    "testing/conftest.py": "test_testing_how_to",
    "testing/test_thumbnails.py": "test_testing_how_to",
    "tracing/shop.py": "test_tracing.test_the_how_to_example",
    "tracing/add_trace_context.py": "test_tracing.test_the_how_to_example",
}

# Each `<!-- output: key -->` block and the test that compares it with real output.
OUTPUT_CHECKED_BY = {
    "tutorial-run-once": "test_tutorial_run_once",
    "invalid-workflow-settings": "test_invalid_settings_messages",
    "invalid-curate-settings": "test_invalid_settings_messages",
    "db-init": "test_alembic_setup.test_db_init_then_new_workflow_then_upgrade",
    "db-init-alembic-ini": "test_alembic_setup.test_db_init_then_new_workflow_then_upgrade",
    "db-init-env-py": "test_alembic_setup.test_db_init_then_new_workflow_then_upgrade",
}


# --- reading the Markdown -------------------------------------------------------------------

_MARKER = re.compile(r"^<!--\s*([a-z-]+)(?::\s*(.*?))?\s*-->$")
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass
class Block:
    """A fenced block of a Markdown file, with the marker on the line above it."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    body: str
    marker: str | None
    argument: str | None
    end_line: int  # 1-based line of the closing fence

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if EXAMPLES not in p.parents)


def _marker_above(lines: list[str], index: int) -> tuple[str | None, str | None]:
    """The marker on the closest non-blank line above ``lines[index]``, if any."""
    for previous in reversed(lines[:index]):
        if previous.strip():
            match = _MARKER.match(previous.strip())
            return (match.group(1), match.group(2)) if match else (None, None)
    return None, None


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        marker, argument = _marker_above(lines, i)
        found.append(
            Block(
                path=path,
                line=i + 1,
                language=fence.group(1),
                body="\n".join(lines[i + 1 : end]),
                marker=marker,
                argument=argument,
                end_line=end + 1,
            )
        )
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in blocks(path)]


def included_source(reference: str) -> str:
    """The text an include marker names: a whole example file or one region of it."""
    file_name, _, region = reference.partition("#")
    source = (DOCS / file_name).read_text().rstrip("\n")
    if not region:
        return source
    pattern = re.compile(
        rf"^[ \t]*# docs: start {re.escape(region)}\n(.*?)^[ \t]*# docs: end {re.escape(region)}$",
        re.MULTILINE | re.DOTALL,
    )
    match = pattern.search(source)
    if match is None:
        raise AssertionError(f"{file_name} has no region {region!r}")
    return textwrap.dedent(match.group(1)).rstrip("\n")


def output_block(key: str) -> str:
    [block] = [b for b in all_blocks() if b.marker == "output" and b.argument == key]
    return block.body


# --- tables generated from the code ---------------------------------------------------------

_DEFAULT_FACTORIES = {
    "worker_id": "`<host>-<pid>-<6 hex digits>`",
    "embedded_data_dir": "`~/.local/share/curate/pgdata` (per-user data directory)",
    "database_connect_args": "`{}`",
}
_VALIDATED = {
    "database_url": "`postgresql+asyncpg://`, `postgresql://` or `postgres://` URL",
    "database_schema": "lower-case SQL identifier",
    "database_connect_args": "the [connection arguments](#connection-arguments) below",
    "database_pooling": "`session` or `transaction`",
    "listen_database_url": "as `CURATE_DATABASE_URL`",
    "log_level": "one of `TRACE`, `DEBUG`, `INFO`, `SUCCESS`, `WARNING`, `ERROR`, `CRITICAL`"
    " (any case)",
}


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _type_name(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return "str"
    if typing.get_origin(annotation) is dict:
        return "JSON object"
    if args and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _type_name(args[0])
    return {int: "int", float: "float", str: "str", bool: "bool", Path: "path"}[annotation]


def _default(name: str, field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _DEFAULT_FACTORIES[name]
    if field.default is None:
        return "unset"
    if isinstance(field.default, str):
        return f"`{field.default}`"
    return f"`{_number(field.default)}`"


def _allowed(name: str, field: FieldInfo) -> str:
    if name in _VALIDATED:
        return _VALIDATED[name]
    parts = []
    for rule in field.metadata:
        if isinstance(rule, Gt):
            parts.append(f"> {_number(rule.gt)}")  # type: ignore[arg-type]
        elif isinstance(rule, Ge):
            parts.append(f"≥ {_number(rule.ge)}")  # type: ignore[arg-type]
        elif isinstance(rule, Lt):
            parts.append(f"< {_number(rule.lt)}")  # type: ignore[arg-type]
        elif isinstance(rule, Le):
            parts.append(f"≤ {_number(rule.le)}")  # type: ignore[arg-type]
        elif isinstance(rule, MinLen):
            parts.append(f"length ≥ {rule.min_length}")
        elif isinstance(rule, MaxLen):
            parts.append(f"length ≤ {rule.max_length}")
    return ", ".join(parts) or "any"


def _workflow_argument(name: str) -> str:
    if name in inspect.signature(curate.Workflow).parameters:
        return f"`{name}`"
    policy_field = name.removeprefix("retry_")
    assert policy_field in inspect.signature(curate.RetryPolicy).parameters, name
    return f"`retry.{policy_field}`"


def settings_rows(kind: str) -> dict[str, list[str]]:
    """The generated leading cells of each row, keyed by the variable cell."""
    model: type[CurateSettings] | type[WorkflowSettings]
    model, prefix = (
        (CurateSettings, "CURATE_") if kind == "curate" else (WorkflowSettings, "<NAME>_SCHEDULER_")
    )
    rows = {}
    for name, field in model.model_fields.items():
        variable = f"`{prefix}{name.upper()}`"
        cells = [
            variable,
            _type_name(field.annotation),
            _default(name, field),
            _allowed(name, field),
        ]
        if kind == "workflow":
            cells.insert(1, _workflow_argument(name))
        rows[variable] = cells
    return rows


def columns_rows() -> dict[str, list[str]]:
    rows = {}
    for column in curate.workflow_columns("thumbnail"):
        if isinstance(column.type, SAEnum):
            kind = f"enum `{column.type.name}`: {', '.join(column.type.enums)}"
        else:
            kind = f"`{column.type.compile(dialect=postgresql.dialect()).lower()}`"
        default = f"`{column.server_default.arg}`" if column.server_default else "—"  # type: ignore[attr-defined]
        name = f"`{column.name}`"
        rows[name] = [name, kind, "yes" if column.nullable else "no", default]
    return rows


def _render_default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "required"
    if isinstance(value, type | types.FunctionType):
        return f"`{value.__name__}`"
    if isinstance(value, float):
        return f"`{_number(value)}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def params_rows(dotted_name: str) -> dict[str, list[str]]:
    """Parameters of a function or class (fields of a dataclass) and their defaults."""
    module_name, _, attribute = dotted_name.rpartition(".")
    target = getattr(importlib.import_module(module_name), attribute)
    rows = {}
    if dataclasses.is_dataclass(target):
        for field in dataclasses.fields(target):
            if field.default is not dataclasses.MISSING:
                default = _render_default(field.default)
            elif field.default_factory is not dataclasses.MISSING:
                default = _render_default(field.default_factory())
            else:
                default = "required"
            rows[f"`{field.name}`"] = [f"`{field.name}`", default]
    else:
        for name, parameter in inspect.signature(target).parameters.items():
            rows[f"`{name}`"] = [f"`{name}`", _render_default(parameter.default)]
    return rows


def generated_rows(kind: str, argument: str | None) -> dict[str, list[str]]:
    if kind == "settings-table" and argument in ("curate", "workflow"):
        return settings_rows(argument)
    if kind == "columns-table":
        return columns_rows()
    if kind == "params-table" and argument:
        return params_rows(argument)
    raise AssertionError(f"unknown table marker {kind}: {argument}")


_TABLE_KINDS = ("settings-table", "columns-table", "params-table")


@dataclass
class Table:
    path: Path
    key: tuple[str, str | None]
    header_line: int  # 0-based index of the header row
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def tables(path: Path) -> list[Table]:
    lines = path.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        match = _MARKER.match(line.strip())
        if match is None or match.group(1) not in _TABLE_KINDS:
            continue
        header = i + 1
        while not lines[header].strip():
            header += 1
        end = header + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        rows = [_cells(row) for row in lines[header + 2 : end]]
        found.append(Table(path, (match.group(1), match.group(2)), header, rows))
    return found


def all_tables() -> list[Table]:
    return [table for path in doc_files() for table in tables(path)]


# --- rewriting (python -m tests.test_docs --write) ------------------------------------------


def write() -> None:
    for path in doc_files():
        lines = path.read_text().splitlines()
        for block in reversed(blocks(path)):
            if block.marker == "include" and block.argument:
                body = included_source(block.argument).splitlines()
                lines[block.line : block.end_line - 1] = body
        for table in reversed(tables(path)):
            generated = generated_rows(*table.key)
            free = {row[0]: row[len(next(iter(generated.values()))) :] for row in table.rows}
            width = len(_cells(lines[table.header_line]))
            new_rows = []
            for key, cells in generated.items():
                rest = free.get(key) or [""] * (width - len(cells))
                new_rows.append("| " + " | ".join(cells + rest) + " |")
            start = table.header_line + 2
            lines[start : start + len(table.rows)] = new_rows
        path.write_text("\n".join(lines) + "\n")


# --- the docs themselves --------------------------------------------------------------------


def test_every_python_block_is_executed_or_marked_not_run() -> None:
    unmarked = [
        block.where()
        for block in all_blocks()
        if block.language in ("python", "py", "python3")
        and not (
            block.marker in ("include", "output") or (block.marker == "not-run" and block.argument)
        )
    ]
    assert not unmarked, (
        "python blocks need <!-- include: examples/... --> (an executed example),"
        f" <!-- output: key --> (a file curate writes) or <!-- not-run: reason -->: {unmarked}"
    )


def test_included_blocks_match_their_example_files() -> None:
    stale = []
    for block in all_blocks():
        if block.marker != "include":
            continue
        assert block.argument, block.where()
        file_name = block.argument.partition("#")[0]
        assert file_name.startswith("examples/"), f"{block.where()}: include from examples/"
        assert file_name.removeprefix("examples/") in EXECUTED_BY, (
            f"{block.where()}: {file_name} is not executed by any test"
        )
        if block.body != included_source(block.argument):
            stale.append(block.where())
    assert not stale, f"blocks differ from their files (python -m tests.test_docs --write): {stale}"


def test_every_example_file_is_executed_by_a_test() -> None:
    files = {
        str(p.relative_to(EXAMPLES))
        for p in EXAMPLES.rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    }
    assert files == set(EXECUTED_BY)
    for test_name in {*EXECUTED_BY.values(), *OUTPUT_CHECKED_BY.values()}:
        # "test_x" is in this module; "test_module.test_x" in tests/test_module.py.
        module_name, _, function = test_name.rpartition(".")
        module = (
            importlib.import_module(f"tests.{module_name}")
            if module_name
            else sys.modules[__name__]
        )
        assert callable(getattr(module, function, None)), test_name


def test_every_output_block_is_checked() -> None:
    keys = [b.argument for b in all_blocks() if b.marker == "output"]
    assert sorted(keys) == sorted(OUTPUT_CHECKED_BY)


def test_not_run_markers_give_a_reason() -> None:
    for block in all_blocks():
        if block.marker == "not-run":
            assert block.argument, f"{block.where()}: say why the block is not run"


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_relative_links_resolve() -> None:
    broken = []
    for path in doc_files():
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            linked = (path.parent / target) if target else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}: {target}#{anchor}")
    assert not broken, broken


def test_documented_default_factories() -> None:
    """The two defaults the settings tables describe in words rather than generate."""
    from curate.settings import default_embedded_data_dir, default_worker_id

    assert re.fullmatch(r".+-\d+-[0-9a-f]{6}", default_worker_id())
    if sys.platform == "linux" and "XDG_DATA_HOME" not in os.environ:
        expected = Path("~/.local/share/curate/pgdata").expanduser()
        assert default_embedded_data_dir() == expected


def test_generated_tables_match_the_code() -> None:
    found = all_tables()
    kinds = {table.key for table in found}
    assert {("settings-table", "curate"), ("settings-table", "workflow")} <= kinds
    assert ("columns-table", None) in kinds
    for table in found:
        expected = generated_rows(*table.key)
        width = len(next(iter(expected.values())))
        documented = {row[0]: row[:width] for row in table.rows}
        assert documented == expected, (
            f"{table.path.relative_to(ROOT)}:{table.header_line + 1}: table {table.key} differs"
            " from the code (python -m tests.test_docs --write)"
        )


def test_public_names_are_in_the_reference() -> None:
    reference = "\n".join(p.read_text() for p in (DOCS / "reference").glob("*.md"))
    missing = [
        name
        for name in curate.__all__
        if not re.search(rf"`(curate\.)?{re.escape(name)}\b", reference)
    ]
    assert not missing, f"exported but not in docs/reference: {missing}"


def test_documented_error_length_is_the_real_one() -> None:
    assert f"{ERROR_MAX_LENGTH:,}" in (DOCS / "reference" / "columns.md").read_text()


# --- executing the examples -----------------------------------------------------------------


def example(module_name: str) -> Any:
    return importlib.import_module(module_name)


def load_migration(file_name: str) -> Any:
    path = EXAMPLES / "migrations" / file_name
    spec = importlib.util.spec_from_file_location(f"docs_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def create_photos_tables(engine: AsyncEngine) -> None:
    models = example("photos.models")
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)


async def photo_rows(engine: AsyncEngine) -> dict[int, Any]:
    models = example("photos.models")
    async with engine.connect() as conn:
        result = await conn.execute(select(models.Photo.__table__))
        return {row.id: row for row in result}


async def test_tutorial_run_once(
    settings: curate.CurateSettings, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    await example("tutorial_run_once").main(settings)

    printed = capsys.readouterr().out.rstrip("\n")
    assert printed == output_block("tutorial-run-once")
    rows = await photo_rows(engine)
    assert rows[1].thumbnail_status == "Complete"
    assert (rows[1].thumb_width, rows[1].thumb_height) == (128, 96)
    assert (rows[3].thumbnail_status, rows[3].thumbnail_attempts) == ("Error", 1)
    assert rows[4].thumbnail_status is None


async def test_tutorial_scheduler(
    settings: curate.CurateSettings, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduler_module = example("photos.services.thumbnail_scheduler")
    await asyncio.wait_for(example("tutorial_scheduler").main(settings), timeout=30)

    assert capsys.readouterr().out == "100 complete, 0 failed\n"
    rows = await photo_rows(engine)
    assert {row.thumbnail_status for row in rows.values()} == {"Complete"}
    assert {row.thumbnail_claimed_by.partition("#")[0] for row in rows.values()} == {
        settings.worker_id
    }

    # The job the setup function registers follows the naming convention.
    scheduler_module.setup_thumbnail_scheduler()
    job = scheduling.get_scheduler().get_job("process_pending_thumbnails")
    assert job.func is scheduler_module.process_pending_thumbnails
    assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, None)
    assert job.trigger.interval.total_seconds() == 5


async def test_fastapi_app(
    settings: curate.CurateSettings,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lifespan reads CURATE_* from the environment, as a deployed app does."""
    assert settings.database_url and settings.database_schema
    monkeypatch.setenv("CURATE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CURATE_DATABASE_SCHEMA", settings.database_schema)
    monkeypatch.setenv("CURATE_WORKER_ID", "docs-app")
    monkeypatch.setenv("THUMBNAIL_SCHEDULER_INTERVAL_SECONDS", "0.1")
    monkeypatch.setenv("PHOTOS_ADMIN_PASSWORD", "s3cret")
    await create_photos_tables(engine)
    models = example("photos.models")
    async with engine.begin() as conn:
        await conn.execute(
            insert(models.Photo),
            [
                {"id": 1, "url": "https://example.org/1.jpg", "width": 300, "height": 600},
                {"id": 2, "url": "https://example.org/2.jpg", "width": 0, "height": 10},
            ],
        )
    app = example("photos.app").app

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client,
    ):
        for photo_id in (1, 2):
            response = await client.put(
                f"/photos/{photo_id}/curation-status", params={"status": "Selected"}
            )
            assert response.status_code == 200, response.text
        missing = await client.put("/photos/99/curation-status", params={"status": "Selected"})
        assert missing.status_code == 404

        async def settled() -> bool:
            states = [(await client.get(f"/photos/{n}")).json() for n in (1, 2)]
            return all(s["thumbnail_status"] in ("Complete", "Error") for s in states)

        await wait_until(settled, seconds=15, what="both photos to settle")
        first = (await client.get("/photos/1")).json()
        second = (await client.get("/photos/2")).json()

        # The router, for the admin only: counts, one item, the dashboard, re-queueing.
        admin = httpx.BasicAuth("admin", "s3cret")
        for path in ("/curate/workflows/thumbnail", "/curate/dashboard"):
            for auth in (None, httpx.BasicAuth("admin", "wrong"), httpx.BasicAuth("eve", "s3cret")):
                refused = await client.get(path, auth=auth)
                assert refused.status_code == 401, path
                assert refused.headers["www-authenticate"] == "Basic"  # a browser asks
            assert (await client.get(path, auth=admin)).status_code == 200
        thumbnail = (await client.get("/curate/workflows/thumbnail", auth=admin)).json()
        assert (thumbnail["counts"]["complete"], thumbnail["counts"]["error"]) == (1, 1)
        # An error quoting an e-mail address is shown with the address masked.
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE photos SET thumbnail_error = thumbnail_error || ' for ann@example.org'"
                    " WHERE id = 2"
                )
            )
        item = (await client.get("/curate/workflows/thumbnail/items/2", auth=admin)).json()
        assert item["error"] == f"{second['thumbnail_error']} for <email>"
        requeue_url = "/curate/workflows/thumbnail/requeue"
        refused = await client.post(requeue_url, json={"errors": True})
        assert refused.status_code == 401
        # Another site's form, posted by the admin's browser with the password it keeps.
        forged = await client.post(
            requeue_url,
            data={"errors": "true"},
            auth=admin,
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403
        assert (await photo_rows(engine))[2].thumbnail_status == "Error"
        requeued = await client.post(requeue_url, json={"errors": True}, auth=admin)
        assert requeued.json() == {"workflow": "thumbnail", "requeued": 1}

    assert first == {
        "id": 1,
        "curation_status": "Selected",
        "thumbnail_status": "Complete",
        "thumbnail_error": None,
        "thumbnail_attempts": 1,
        "thumbnail": [64, 128],
    }
    assert second["thumbnail_status"] == "Error"
    assert second["thumbnail_error"] == "NonRetryableError: photo 2 has no size (0x10)"
    assert (await photo_rows(engine))[1].thumbnail_claimed_by.startswith("docs-app#")


async def test_photos_worker_process(
    settings: curate.CurateSettings, engine: AsyncEngine, tmp_path: Path
) -> None:
    """deploy-replicas.md: the worker drains the queue, keeps polling, exits 0 on SIGTERM."""
    assert settings.database_url and settings.database_schema
    await create_photos_tables(engine)
    models = example("photos.models")
    curation = example("photos.services.curation_service")
    sessionmaker = await curate.get_runtime().database.sessionmaker()

    async def select_photos(ids: range) -> None:
        photos = [
            {"id": n, "url": f"https://example.org/{n}.jpg", "width": 640, "height": 480}
            for n in ids
        ]
        if 3 in ids:
            photos[ids.index(3)]["width"] = 0  # fails: NonRetryableError
        async with sessionmaker() as session, session.begin():
            await session.execute(insert(models.Photo), photos)
            await curation.set_curation_status(session, list(ids), models.CurationStatus.Selected)

    async def settled(count: int) -> bool:
        assert process.returncode is None, log_path.read_text()  # the worker must keep running
        rows = await photo_rows(engine)
        finished = [r for r in rows.values() if r.thumbnail_status in ("Complete", "Error")]
        return len(finished) == count

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CURATE_") and "_SCHEDULER_" not in key
    }
    env.update(
        CURATE_DATABASE_URL=settings.database_url,
        CURATE_DATABASE_SCHEMA=settings.database_schema,
        CURATE_WORKER_ID="docs-worker",
        THUMBNAIL_SCHEDULER_INTERVAL_SECONDS="0.1",
    )
    await select_photos(range(1, 41))
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "photos.worker",
            cwd=EXAMPLES,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await wait_until(lambda: settled(40), seconds=60, what="the worker to drain the queue")
        await select_photos(range(41, 46))  # queued while it runs: a later poll takes them
        await wait_until(lambda: settled(45), seconds=30, what="the worker to take new rows")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, log_path.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    rows = await photo_rows(engine)
    complete = {n for n, row in rows.items() if row.thumbnail_status == "Complete"}
    assert complete == set(range(1, 46)) - {3}
    assert rows[3].thumbnail_error == "NonRetryableError: photo 3 has no size (0x480)"
    assert {r.thumbnail_claimed_by.partition("#")[0] for r in rows.values()} == {"docs-worker"}
    logs = log_path.read_text()
    assert "worker docs-worker running ['thumbnail']" in logs
    assert "stopping: no new claims" in logs


async def test_testing_how_to(database_url: str) -> None:
    """test-your-workflows.md: the example conftest and tests pass in a pytest run of their
    own, as in an app (the plugin through its entry point, a database copy per test)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CURATE_")}
    env.update(CURATE_TEST_DATABASE_URL=database_url, PYTHONPATH=str(EXAMPLES))
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "testing"),
        cwd=EXAMPLES,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
    assert process.returncode == 0, output
    assert "3 passed" in output, output


def _run_migration(function: Callable[[], None]) -> Callable[[Any], None]:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    def run(sync_connection: Any) -> None:
        with Operations.context(MigrationContext.configure(sync_connection)):
            function()

    return run


TABLES_FOUND = text("SELECT count(to_regclass(t)) FROM unnest(CAST(:tables AS text[])) AS t")
"""How many of the tables named ``tables`` exist on the search_path."""


async def _thumbnail_one_photo(runtime: curate.Runtime, engine: AsyncEngine) -> Any:
    """Photo 1 in the migrated table, queued for and thumbnailed by the example's
    workflow (it must complete); the workflow."""
    models = example("photos.models")
    async with engine.begin() as conn:
        await conn.execute(
            insert(models.Photo),
            [{"id": 1, "url": "https://example.org/1.jpg", "width": 256, "height": 256}],
        )
    thumbnail_workflow = example("photos.services.thumbnail_scheduler").thumbnail_workflow
    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await thumbnail_workflow.queue(session, [1])
    assert (await thumbnail_workflow.run()).completed == 1
    return thumbnail_workflow


async def test_migrations_up_down_up(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    create_photos = load_migration("0001_create_photos.py")
    add_thumbnail = load_migration("0002_add_thumbnail_workflow.py")
    leave_room = load_migration("0003_leave_room_for_hot_updates.py")
    assert add_thumbnail.down_revision == create_photos.revision
    assert leave_room.down_revision == add_thumbnail.revision
    models = example("photos.models")

    async def photos_columns() -> set[str]:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: {col["name"] for col in sa_inspect(c).get_columns("photos")}
            )

    async def photos_indexes() -> dict[str, Any]:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: {ix["name"]: ix for ix in sa_inspect(c).get_indexes("photos")}
            )

    async with engine.begin() as conn:
        await conn.run_sync(_run_migration(create_photos.upgrade))
    base_columns = await photos_columns()
    async with engine.begin() as conn:
        await conn.run_sync(_run_migration(add_thumbnail.upgrade))

    workflow_columns = {c.name for c in curate.workflow_columns("thumbnail")}
    assert await photos_columns() == base_columns | workflow_columns
    index = (await photos_indexes())["ix_photos_thumbnail_queued"]
    assert index["column_names"] == ["thumbnail_priority", "id"]
    assert index["column_sorting"] == {"thumbnail_priority": ("desc",)}
    assert "Queued" in index["dialect_options"]["postgresql_where"]
    index = (await photos_indexes())["ix_photos_thumbnail_processing"]
    assert index["column_names"] == ["id"]
    assert "Processing" in index["dialect_options"]["postgresql_where"]

    fillfactor = text("SELECT reloptions FROM pg_class WHERE oid = to_regclass('photos')")
    async with engine.begin() as conn:
        await conn.run_sync(_run_migration(leave_room.upgrade))
        assert await conn.scalar(fillfactor) == ["fillfactor=90"]
        await conn.run_sync(_run_migration(leave_room.downgrade))
        assert await conn.scalar(fillfactor) == ["fillfactor=100"]

    def differences(sync_connection: Any) -> list[Any]:
        context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
        return compare_metadata(context, models.Base.metadata)

    async with engine.connect() as conn:
        diff = await conn.run_sync(differences)
    photos_diff = [d for d in diff if "photos" in repr(d)]
    assert photos_diff == [], "the migrations and photos/models.py disagree"

    # The migrated table runs the workflow.
    await _thumbnail_one_photo(runtime, engine)

    async with engine.begin() as conn:
        await conn.run_sync(_run_migration(add_thumbnail.downgrade))
    assert await photos_columns() == base_columns
    assert "ix_photos_thumbnail_queued" not in await photos_indexes()
    curate_tables = TABLES_FOUND
    async with engine.connect() as conn:
        type_left = await conn.scalar(text("SELECT to_regtype('thumbnail_status')"))
        left = await conn.scalar(curate_tables, {"tables": list(own_tables_sql.TABLES)})
        assert left == 0  # drop_curate_tables()
    assert type_left is None  # looked up on this test's search_path only

    async with engine.begin() as conn:
        await conn.run_sync(_run_migration(add_thumbnail.upgrade))
    assert await photos_columns() == base_columns | workflow_columns
    async with engine.connect() as conn:
        created = await conn.scalar(curate_tables, {"tables": list(own_tables_sql.TABLES)})
        assert created == len(own_tables_sql.TABLES)  # create_curate_tables()
    async with engine.begin() as conn:
        await conn.run_sync(_run_migration(add_thumbnail.downgrade))
        await conn.run_sync(_run_migration(create_photos.downgrade))


async def test_migrating_an_older_database(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    """write-migrations.md: 0004 brings a database migrated by an earlier curate (no
    thumbnail_snoozes, none of curate's newer tables) up to date, and may run again."""
    runtime.settings = runtime.settings.model_copy(update={"attempt_history": "all"})
    steps = [
        load_migration(name)
        for name in (
            "0001_create_photos.py",
            "0002_add_thumbnail_workflow.py",
            "0003_leave_room_for_hot_updates.py",
            "0004_snoozes_and_operator_tables.py",
        )
    ]
    assert steps[3].down_revision == steps[2].revision
    newer = ("curate_attempts", "curate_cancellations", "curate_workflow_stats")
    async with engine.begin() as conn:
        for step in steps[:3]:
            await conn.run_sync(_run_migration(step.upgrade))
        # As an earlier curate left it.
        await conn.execute(text("ALTER TABLE photos DROP COLUMN thumbnail_snoozes"))
        for table in newer:
            await conn.execute(text(f"DROP TABLE {table}"))
    for _ in range(2):  # a second upgrade changes nothing
        async with engine.begin() as conn:
            await conn.run_sync(_run_migration(steps[3].upgrade))

    async with engine.connect() as conn:
        [snoozes] = await conn.run_sync(
            lambda c: [
                col
                for col in sa_inspect(c).get_columns("photos")
                if col["name"] == "thumbnail_snoozes"
            ]
        )
        found = await conn.scalar(
            TABLES_FOUND,
            {"tables": list(newer)},
        )
    assert (snoozes["nullable"], snoozes["default"]) == (False, "0")
    assert found == len(newer)

    thumbnail_workflow = await _thumbnail_one_photo(runtime, engine)
    history = await operations.read_attempts(engine, thumbnail_workflow, 1)
    assert history is not None and [a.outcome for a in history] == ["completed"]

    async with engine.begin() as conn:
        for step in reversed(steps):
            await conn.run_sync(_run_migration(step.downgrade))


async def test_operate_examples(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    """operate-items.md: a snooze waits its delay and spends no attempt; the attempts read
    back newest first; cancels end waiting rows in the Cancelled status, and move failed
    rows there; a workflow without that status refuses the latter."""
    runtime.settings = runtime.settings.model_copy(update={"attempt_history": "all"})
    supplier = example("operate.supplier")
    exports = example("operate.exports")
    admin = example("operate.admin")
    async with engine.begin() as conn:
        await conn.run_sync(supplier.Base.metadata.create_all)
        await conn.run_sync(exports.Base.metadata.create_all)
        await conn.execute(insert(supplier.Product), [{"id": 1, "sku": "TEA-250"}])
        await conn.execute(
            insert(exports.Export), [{"id": n, "report": "sales"} for n in (1, 2, 3)]
        )
    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await supplier.price_check.queue(session, [1])
        await exports.export.queue(session, [1, 2, 3])

    harness = WorkflowHarness(runtime)
    now = harness.freeze_time()
    supplier.supplier.busy_answers = 2
    for snoozes in (1, 2):
        result = await harness.drain(supplier.price_check)
        assert (result.snoozed, result.completed, result.failed) == (1, 0, 0)
        async with engine.connect() as conn:
            product = (await conn.execute(select(supplier.Product.__table__))).one()
        assert (product.price_check_status, product.price_check_attempts) == ("Queued", 0)
        assert product.price_check_snoozes == snoozes
        assert product.price_check_run_after == now + timedelta(seconds=30 * snoozes)
        assert product.price_cents is None
        harness.advance_time(seconds=29)
        assert (await harness.drain(supplier.price_check)).claimed == 0  # not due yet
        harness.advance_time(seconds=1)
    assert (await harness.drain(supplier.price_check)).completed == 1
    history = await admin.attempts(supplier.price_check, "1")
    assert [a.outcome for a in history] == ["completed", "snoozed", "snoozed"]
    assert history[0].attempt == 1  # the snoozes spent no attempt
    assert all(a.worker == runtime.settings.worker_id for a in history)

    async with engine.begin() as conn:  # export 3 failed for good
        await conn.execute(
            update(exports.Export)
            .where(exports.Export.id == 3)
            .values(export_status="Error", export_error="OSError: disk full")
        )
    nothing_yet = await admin.would_cancel(exports.export, ["1"])
    assert nothing_yet == operations.CancelCount(waiting=1, running=0)
    done = await admin.cancel(exports.export, ["1"], "wrong date range (ana)")
    assert done == operations.CancelCount(waiting=1, running=0)
    moved = await admin.cancel_failed(exports.export, "the disk was replaced")
    assert moved == operations.CancelCount(waiting=1, running=0)
    assert (await harness.drain(exports.export)).completed == 1
    async with engine.connect() as conn:
        rows = {
            row.id: (row.export_status, row.export_error)
            for row in await conn.execute(select(exports.Export.__table__))
        }
    assert rows == {
        1: ("Cancelled", "Cancelled: wrong date range (ana)"),
        2: ("Complete", None),
        3: ("Cancelled", "Cancelled: the disk was replaced"),
    }
    [cancelled] = await admin.attempts(exports.export, 1)
    assert (cancelled.outcome, cancelled.worker, cancelled.started_at) == ("cancelled", None, None)
    with pytest.raises(curate.ConfigurationError, match="has no cancelled status"):
        await admin.cancel_failed(supplier.price_check, "no")


# --- what configure.md and settings.md claim ------------------------------------------------


def test_invalid_settings_messages(
    settings: curate.CurateSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler_module = example("photos.services.thumbnail_scheduler")
    curate.configure(settings)
    monkeypatch.setenv("THUMBNAIL_SCHEDULER_INTERVAL_SECONDS", "soon")
    monkeypatch.setenv("THUMBNAIL_SCHEDULER_BATCH_SIZE", "0")
    with pytest.raises(curate.ConfigurationError) as workflow_error:
        scheduler_module.setup_thumbnail_scheduler()
    assert f"curate.errors.ConfigurationError: {workflow_error.value}" == output_block(
        "invalid-workflow-settings"
    )

    monkeypatch.setenv("CURATE_DATABASE_URL", "mysql://db.example.org/app")
    monkeypatch.setenv("CURATE_POOL_SIZE", "0")
    with pytest.raises(curate.ConfigurationError) as curate_error:
        curate.CurateSettings()
    assert f"curate.errors.ConfigurationError: {curate_error.value}" == output_block(
        "invalid-curate-settings"
    )


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Init arguments > environment > .env for CurateSettings; environment > .env > code
    values > defaults for a workflow's settings (configure.md)."""
    thumbnail_workflow = example("photos.services.thumbnail_scheduler").thumbnail_workflow
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "CURATE_WORKER_ID=from-dotenv\n"
        "CURATE_POOL_SIZE=3\n"
        "THUMBNAIL_SCHEDULER_BATCH_SIZE=7\n"
        "THUMBNAIL_SCHEDULER_CONCURRENCY=2\n"
    )
    monkeypatch.setenv("CURATE_POOL_SIZE", "4")
    monkeypatch.setenv("THUMBNAIL_SCHEDULER_CONCURRENCY", "8")

    process = CurateSettings()
    assert (process.worker_id, process.pool_size) == ("from-dotenv", 4)
    assert CurateSettings(pool_size=6).pool_size == 6

    flow = thumbnail_workflow.load_settings()
    assert flow.batch_size == 7  # .env over the code value 20
    assert flow.concurrency == 8  # environment over .env and the code value 4
    assert flow.interval_seconds == 5  # the code value over the default
    assert flow.max_instances == WorkflowSettings.model_fields["max_instances"].default


def test_failure_text_is_cut_and_nul_bytes_escaped() -> None:
    """columns.md: `ExceptionType: message`, NUL bytes escaped, at most ERROR_MAX_LENGTH."""
    from curate.engine.error_text import format_error

    text_ = format_error(ValueError("a\x00b" + "x" * 5_000))
    assert text_.startswith("ValueError: a\\x00b")
    assert len(text_) == ERROR_MAX_LENGTH
    assert text_.endswith("… [5018 characters in all, cut]")
    assert format_error(KeyError()) == "KeyError"


def _main(argv: list[str]) -> int:
    if argv == ["--write"]:
        write()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
