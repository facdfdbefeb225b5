"""The demo's tables, created and dropped by running its Alembic migrations from Python.

The migrations live in the repository (``alembic.ini`` and ``migrations/`` at its top),
not in the package: the demo runs from a clone with curate installed in editable mode.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

import curate
from curate import ConfigurationError, Runtime, get_runtime

REPOSITORY = Path(curate.__file__).resolve().parents[2]


def alembic_config(repository: Path = REPOSITORY) -> Config:
    """The repository's ``alembic.ini``; a clear error when curate runs from elsewhere."""
    ini = repository / "alembic.ini"
    if not ini.is_file() or not (repository / "migrations" / "env.py").is_file():
        raise ConfigurationError(
            f"the demo's migrations were not found: expected {ini} and"
            f" {repository / 'migrations'}/. Run the demo from a clone of the curate"
            " repository with curate installed in editable mode (pip install -e .)"
        )
    return Config(str(ini))


async def upgrade(runtime: Runtime | None = None, revision: str = "head") -> None:
    """Migrate the runtime's database (and schema, if configured) up to ``revision``."""
    await _run(partial(command.upgrade, revision=revision), runtime)


async def downgrade(runtime: Runtime | None = None, revision: str = "base") -> None:
    """Migrate the runtime's database (and schema, if configured) down to ``revision``."""
    await _run(partial(command.downgrade, revision=revision), runtime)


async def _run(alembic_command: Callable[[Config], None], runtime: Runtime | None) -> None:
    """Run ``alembic_command`` in one transaction on the runtime's engine."""
    runtime = runtime or get_runtime()
    config = alembic_config()
    config.attributes["schema"] = runtime.settings.database_schema

    def in_transaction(connection: Connection) -> None:
        config.attributes["connection"] = connection
        alembic_command(config)

    async with (await runtime.database.engine()).begin() as connection:
        await connection.run_sync(in_transaction)
