"""Working out what `curate new-workflow` writes, and checking it all before writing."""

from __future__ import annotations

import keyword
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from curate.columns import ColumnNames
from curate.errors import ConfigurationError
from curate.project import Project
from curate.scaffold import pysource, templates
from curate.scaffold.alembic_setup import plan_alembic_setup, versions_dir
from curate.scaffold.changes import Change, write
from curate.scaffold.history import History, read_history
from curate.settings import WorkflowSettings

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SAMPLES = {"int": "1", "str": '"sample"', "bool": "False", "float": "0.0"}
_OFF_EXAMPLES = {"stale_after_seconds": "3600", "rate_limit": "5"}
"""Example values, shown in .env.example, of the workflow settings that are off (None)
by default."""


@dataclass(frozen=True)
class Request:
    """What the user asked for."""

    name: str
    model: str | None = None
    """``module:Class``; or None to find the model by ``table`` in ``<package>.models``."""
    table: str | None = None
    service_only: bool = False
    force: bool = False


def check_name(name: str) -> None:
    if not _NAME.match(name) or name.endswith("_"):
        raise ConfigurationError(
            f"workflow name {name!r} is not a lower snake_case identifier; use e.g. thumbnail"
            " or sitemap_import"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ConfigurationError(f"workflow name {name!r} is a Python keyword; choose another")
    if pysource.is_reserved_name(name):
        raise ConfigurationError(
            f"workflow name {name!r} is a standard-library module name; choose another"
        )


def plan_new_workflow(project: Project, request: Request) -> list[Change]:
    """Every file to write for ``request``; raises `ConfigurationError`, writing nothing."""
    name = request.name
    check_name(name)
    if name == project.package:
        raise ConfigurationError(f"workflow name {name!r} would shadow the package {name}")
    services = project.inside(project.services_dir.relative_to(project.root))
    scheduler_path = services / f"{name}_scheduler.py"
    service_path = services / f"{name}_service.py"
    for path in (scheduler_path, service_path, services / f"{name}.py"):
        if path.exists() and not request.force:
            raise ConfigurationError(
                f"{path.relative_to(project.root)} exists: the workflow {name!r} (or a module of"
                " that name) is already there; choose another name, or --force to overwrite"
            )
    models_module, model_path, model = _model(project, request)
    limit = _line_length(project)
    values = _values(project, name, model, models_module)

    changes = [
        write(services / "__init__.py", '"""The app\'s background workflows."""\n', keep=True),
        write(service_path, templates.SERVICE.format(**values)),
        write(scheduler_path, templates.SCHEDULER.format(**values)),
        write(project.registry_path, _registry(project, name)),
        write(project.root / ".env.example", _env_example(project, name)),
        write(
            project.inside(Path("tests")) / f"test_{name}_workflow.py",
            templates.TEST.format(**values),
        ),
        write(project.root / "pyproject.toml", _pytest_settings(project)),
    ]
    if not request.service_only:
        changes += _columns_and_migration(project, name, model, models_module, model_path, limit)
    return [c for c in changes if not c.unchanged]


def _model(project: Project, request: Request) -> tuple[str, Path, pysource.ModelClass]:
    if request.model:
        module, _, class_name = request.model.partition(":")
        if not module or not class_name:
            raise ConfigurationError(f"--model {request.model!r} must look like module:Class")
    elif request.table:
        module, class_name = project.models_module, None
    else:
        raise ConfigurationError("say which table the workflow runs over: --table or --model")
    path = project.module_path(module)
    model = pysource.find_model(path.read_text(), class_name=class_name, table=request.table)
    return module, path, model


def _line_length(project: Project) -> int:
    data = tomllib.loads((project.root / "pyproject.toml").read_text())
    length = data.get("tool", {}).get("ruff", {}).get("line-length", 88)
    return int(length)


def _values(
    project: Project, name: str, model: pysource.ModelClass, models_module: str
) -> dict[str, str]:
    variable = re.sub(r"(?<!^)(?=[A-Z])", "_", model.name).lower()
    pk_type = model.pk_type
    stdlib_import = ""
    if pk_type.startswith("uuid."):
        stdlib_import = "import uuid\n\n"
    elif pk_type not in _SAMPLES:
        pk_type, stdlib_import = "Any", "from typing import Any\n\n"
    sample = ", ".join(
        f"{column}={_SAMPLES.get(python_type, 'None')}"
        for column, python_type in model.required.items()
    )
    return {
        "name": name,
        "table": model.table,
        "model": model.name,
        "models_module": models_module,
        "package": project.package,
        "pk_name": model.pk_name,
        "pk_type": pk_type,
        "stdlib_import": stdlib_import,
        "variable": variable if variable != name else f"{variable}_row",
        "sample": sample,
    }


def _registry(project: Project, name: str) -> str:
    """The registry module with every workflow it lists, plus ``name``."""
    path = project.registry_path
    listed = _listed_workflows(project, path.read_text()) if path.exists() else []
    names = sorted({*listed, name})
    rendered_before = _render_registry(project, listed)
    if path.exists() and path.read_text() != rendered_before:
        raise ConfigurationError(
            f"{path.relative_to(project.root)} was edited by hand, so curate will not rewrite"
            f" it; add {name}_workflow and setup_{name}_scheduler to it yourself, then run"
            " again with --force"
        )
    return _render_registry(project, names)


def _listed_workflows(project: Project, source: str) -> list[str]:
    pattern = rf"^from {re.escape(project.package)}\.services\.(\w+)_scheduler import"
    return re.findall(pattern, source, flags=re.MULTILINE)


def _render_registry(project: Project, names: list[str]) -> str:
    imports = "".join(
        f"from {project.package}.services.{n}_scheduler import (\n"
        + "".join(
            f"    {symbol},\n" for symbol in sorted([f"setup_{n}_scheduler", f"{n}_workflow"])
        )
        + ")\n"
        for n in names
    )
    return templates.REGISTRY.format(
        imports=f"\n{imports}" if imports else "",
        workflows="".join(f"\n    {n}_workflow," for n in names) + ("\n" if names else ""),
        setups="".join(f"\n    setup_{n}_scheduler," for n in names) + ("\n" if names else ""),
    )


def _pytest_settings(project: Project) -> str:
    """pyproject.toml, with what the generated test needs to run under a plain ``pytest``
    added when the project says nothing to pytest yet: async tests without markers
    (pytest-asyncio's auto mode) and, in a src/ layout, the package importable. A project
    that configures pytest already keeps its own settings."""
    path = project.root / "pyproject.toml"
    text = path.read_text()
    configured = tomllib.loads(text).get("tool", {}).get("pytest") is not None
    if configured or any((project.root / f).exists() for f in ("pytest.ini", ".pytest.ini")):
        return text
    src_layout = project.package_dir.parent == project.root / "src"
    return (
        text.rstrip("\n")
        + "\n\n"
        + templates.PYTEST_SETTINGS.format(
            pythonpath='pythonpath = ["src"]\n' if src_layout else ""
        )
    )


def _env_example(project: Project, name: str) -> str:
    """.env.example with the workflow's settings, every line a value that loads: the
    default, or for a setting off by default an example value that turns it on."""
    path = project.root / ".env.example"
    existing = path.read_text() if path.exists() else ""
    prefix = WorkflowSettings.env_prefix_for(name)
    if f"# {prefix}" in existing:
        return existing
    lines = [
        f"# The {name} workflow (curate): each setting at its default; uncomment one to",
        "# change it (the environment overrides the values in code).",
    ]
    off = []
    for field, info in WorkflowSettings.model_fields.items():
        if info.default is not None:
            lines.append(f"# {prefix}{field.upper()}={info.default}")
        elif field in _OFF_EXAMPLES:
            off.append(f"# {prefix}{field.upper()}={_OFF_EXAMPLES[field]}")
    if off:
        lines += ["# Off by default; uncommented, these example values turn them on:", *off]
    separator = "\n" if existing and not existing.endswith("\n\n") else ""
    return existing + separator + "\n".join(lines) + "\n"


def _columns_and_migration(
    project: Project,
    name: str,
    model: pysource.ModelClass,
    models_module: str,
    model_path: Path,
    limit: int,
) -> list[Change]:
    mixin = "".join(part.title() for part in name.split("_")) + "Columns"
    columns_path = project.package_dir / "workflow_columns.py"
    columns_source = columns_path.read_text() if columns_path.exists() else templates.COLUMNS_MODULE
    if f"class {mixin}:" not in columns_source:
        columns_source += templates.COLUMNS_CLASS.format(
            mixin=mixin, name=name, columns=_column_lines(name, limit)
        )
    model_source = pysource.add_base(model_path.read_text(), model.name, mixin, limit)
    model_source = pysource.add_import(
        model_source, f"{project.package}.workflow_columns", mixin, project.package, limit
    )
    setup, history = _history(project, models_module)
    head = history.head
    revision = secrets.token_hex(6)
    migration = templates.MIGRATION.format(
        name=name,
        table=model.table,
        revision=revision,
        down_revision=head or "",
        down_revision_literal=f'"{head}"' if head else "None",
        **_own_tables(history.scripts, limit),
    )
    return [
        *setup,
        write(columns_path, columns_source),
        write(model_path, model_source),
        write(history.versions / f"{revision}_add_{name}_workflow.py", migration),
    ]


def _history(project: Project, models_module: str) -> tuple[list[Change], History]:
    """The project's Alembic history; for a project without an Alembic set-up, the set-up
    `curate db init` writes (its env.py on the model's metadata) and its empty history."""
    if project.alembic_ini.is_file():
        return [], read_history(project)
    setup = plan_alembic_setup(project, models_module)
    return setup, History(versions_dir(project), head=None, scripts=())


def _own_tables(scripts: tuple[Path, ...], limit: int) -> dict[str, str]:
    """The migration's parts about curate's own tables: it creates them (and its downgrade
    drops them) when no migration of the project does yet, so the app's role never needs
    to create a table."""
    created = any("create_curate_tables(" in path.read_text() for path in scripts)
    helpers = ["add_workflow_columns", "drop_workflow_columns"]
    if not created:
        helpers += ["create_curate_tables", "drop_curate_tables"]
    names = sorted(helpers)
    imports = pysource.fit(
        f"from curate.migrations import {', '.join(names)}",
        "from curate.migrations import (\n" + "".join(f"    {n},\n" for n in names) + ")",
        limit,
    )
    return {
        "imports": imports,
        "own_tables_note": "" if created else templates.OWN_TABLES_NOTE,
        "create_own_tables": "" if created else "    create_curate_tables()\n",
        "drop_own_tables": "" if created else "    drop_curate_tables()\n",
    }


def _column_lines(name: str, limit: int) -> str:
    names = ColumnNames.for_prefix(name)
    specs = [
        (names.status, "ProcessingStatus | None", f'status_type("{name}")'),
        (names.error, "str | None", "Text"),
        (names.attempts, "int", 'server_default="0"'),
        (names.run_after, "datetime | None", "DateTime(timezone=True)"),
        (names.claimed_by, "str | None", "String(200)"),
        (names.lease_until, "datetime | None", "DateTime(timezone=True)"),
        (names.priority, "int", 'server_default="0"'),
        (names.snoozes, "int", 'server_default="0"'),
    ]
    lines = []
    for column, python_type, argument in specs:
        head = f"    {column}: Mapped[{python_type}] = mapped_column("
        lines.append(
            pysource.fit(f"{head}{argument})", f"{head}\n        {argument}\n    )", limit)
        )
    return "\n".join(lines) + "\n"
