"""`curate db init`: an Alembic set-up wired to curate, for a project that has none.

Alembic's own ``init`` (its generic template) writes alembic.ini and script.py.mako, so
they are the files an Alembic user knows, logging sections included. curate then points
alembic.ini at curate's settings for the database (no URL in the file) and makes the
project's package importable from it, and writes its own two-line env.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

from curate.errors import ConfigurationError
from curate.project import Project
from curate.scaffold import pysource, templates
from curate.scaffold.changes import Change, folder, write

MIGRATIONS = "migrations"
"""The folder of the set-up, beside alembic.ini (as ``alembic init migrations`` makes it)."""


def migrations_dir(project: Project) -> Path:
    return project.inside(project.alembic_ini).parent / MIGRATIONS


def versions_dir(project: Project) -> Path:
    """Where the set-up's revisions go."""
    return migrations_dir(project) / "versions"


def plan_alembic_setup(project: Project, models_module: str | None = None) -> list[Change]:
    """The files of a new set-up at ``project.alembic_ini``, its env.py using the metadata
    of ``models_module`` (default ``<package>.models``); refuses where a set-up exists."""
    ini, migrations = project.inside(project.alembic_ini), migrations_dir(project)
    if ini.exists():
        raise ConfigurationError(
            f"{ini.relative_to(project.root)} exists: the project has an Alembic set-up"
            " already, and curate db and curate new-workflow use it"
        )
    if migrations.exists() and any(migrations.iterdir()):
        raise ConfigurationError(
            f"{migrations.relative_to(project.root)}/ exists, but {ini.name} does not: if it"
            " is an Alembic set-up, name its ini in pyproject.toml ([tool.curate] alembic_ini)"
            f"; else move {MIGRATIONS}/ away"
        )
    stock_ini, script_template = _stock_files()
    module = models_module or project.models_module
    return [
        write(ini, _ini(project, stock_ini)),
        write(migrations / "env.py", _env_py(project, module)),
        write(migrations / "script.py.mako", script_template),
        folder(versions_dir(project)),
    ]


def _stock_files() -> tuple[str, str]:
    """alembic.ini and script.py.mako as ``alembic init`` (generic template) writes them."""
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
        config = Config(str(Path(scratch, "alembic.ini")))  # it prints what it writes
        command.init(config, str(Path(scratch, MIGRATIONS)), template="generic")
        return (
            Path(scratch, "alembic.ini").read_text(),
            Path(scratch, MIGRATIONS, "script.py.mako").read_text(),
        )


def _ini(project: Project, stock: str) -> str:
    """The stock alembic.ini with the migrations beside it, the project's package importable
    and no database URL (curate's settings give it)."""
    here = project.inside(project.alembic_ini).parent
    sources = Path(os.path.relpath(project.package_dir.parent, here)).as_posix()
    text = _replace(stock, "script_location", f"script_location = %(here)s/{MIGRATIONS}")
    text = _replace(
        text,
        "prepend_sys_path",
        "prepend_sys_path = %(here)s" + ("" if sources == "." else f"/{sources}"),
    )
    return _replace(text, "sqlalchemy.url", templates.INI_DATABASE)


def _replace(ini: str, key: str, line: str) -> str:
    replaced, count = re.subn(
        rf"^{re.escape(key)}\s*=.*$", lambda _: line, ini, count=1, flags=re.MULTILINE
    )
    if count != 1:
        raise ConfigurationError(
            f"this Alembic's alembic init wrote no {key} line; curate db init needs updating"
        )
    return replaced


def _env_py(project: Project, module: str) -> str:
    """curate's env.py, with the metadata of the models in ``module`` when it finds them."""
    try:
        source = project.module_path(module).read_text()
    except ConfigurationError:
        source = ""
    owner = pysource.find_metadata_owner(source)
    models = (
        templates.ENV_PY_MODELS.format(module=module, owner=owner)
        if owner
        else templates.ENV_PY_NO_MODELS.format(module=module)
    )
    return templates.ENV_PY.format(models=models)
