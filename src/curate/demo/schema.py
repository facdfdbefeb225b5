"""The demo's tables, created and dropped by running its Alembic migrations from Python.

The migrations live in the repository (``alembic.ini`` and ``migrations/`` at its top),
not in the package: the demo runs from a clone with curate installed in editable mode.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from alembic import command

import curate
from curate import ConfigurationError, Runtime, get_runtime
from curate.alembic_env import migrate

REPOSITORY = Path(curate.__file__).resolve().parents[2]


def alembic_ini(repository: Path = REPOSITORY) -> Path:
    """The repository's ``alembic.ini``; a clear error when curate runs from elsewhere."""
    ini = repository / "alembic.ini"
    if not ini.is_file() or not (repository / "migrations" / "env.py").is_file():
        raise ConfigurationError(
            f"the demo's migrations were not found: expected {ini} and"
            f" {repository / 'migrations'}/. Run the demo from a clone of the curate"
            " repository with curate installed in editable mode (pip install -e .)"
        )
    return ini


async def upgrade(runtime: Runtime | None = None, revision: str = "head") -> None:
    """Migrate the runtime's database (and schema, if configured) up to ``revision``."""
    await migrate(
        runtime or get_runtime(), alembic_ini(), partial(command.upgrade, revision=revision)
    )


async def downgrade(runtime: Runtime | None = None, revision: str = "base") -> None:
    """Migrate the runtime's database (and schema, if configured) down to ``revision``."""
    await migrate(
        runtime or get_runtime(), alembic_ini(), partial(command.downgrade, revision=revision)
    )
