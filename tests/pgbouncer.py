"""A real PgBouncer in transaction pooling mode in front of the test server.

Debian's ``/usr/sbin/pgbouncer`` (1.18 on these machines: no prepared statements in
transaction mode, like many managed poolers), configured as production set-ups are and
with nothing of curate's: ``pool_mode = transaction``, only ``extra_float_digits`` ignored
among unknown startup parameters, and a small pool, so that several clients really share
a server connection. PgBouncer refuses to run as root: under root it runs as ``postgres``
in a directory owned by that user. It is stopped by its pid however the test ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.helpers import free_port

PGBOUNCER = Path("/usr/sbin/pgbouncer")
POOL_SIZE = 5
"""Server connections per database and user: fewer than the tests' clients."""
START_SECONDS = 10.0


@dataclass(frozen=True)
class PgBouncer:
    """A running PgBouncer."""

    port: int
    directory: Path

    def url(self, server_url: str) -> str:
        """``server_url`` (user, password, database, query) through this PgBouncer."""
        url = make_url(server_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    @property
    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")


def missing_pgbouncer() -> str | None:
    """Why PgBouncer cannot run here, or None."""
    if not os.access(PGBOUNCER, os.X_OK):
        return f"{PGBOUNCER} is missing: apt-get install pgbouncer (.ci/run does)"
    return None


@contextlib.contextmanager
def start_pgbouncer(server_host: str, server_port: int) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode on a free port of 127.0.0.1, in front of
    ``server_host:server_port`` (trust authentication, as the test server has)."""
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="curate-pgbouncer-"))
    try:
        port = free_port()
        config = directory / "pgbouncer.ini"
        (directory / "users.txt").write_text('"postgres" ""\n')
        config.write_text(
            "[databases]\n"
            f"* = host={server_host} port={server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {directory / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {POOL_SIZE}\n"
            "max_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {directory / 'pgbouncer.log'}\n"
            f"pidfile = {directory / 'pgbouncer.pid'}\n"
        )
        if owner is not None:
            for path in (directory, *directory.iterdir()):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [str(PGBOUNCER), "-d", str(config)],
            check=True,
            capture_output=True,
            timeout=START_SECONDS,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            cwd="/",
        )
        pid = _wait_for_pid(directory / "pgbouncer.pid")
        try:
            bouncer = PgBouncer(port, directory)
            _wait_for_port(port, bouncer)
            yield bouncer
        finally:
            _stop(pid)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for_pid(pidfile: Path) -> int:
    """The daemon's pid, once it has written it."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(pidfile.read_text())
        time.sleep(0.01)
    raise RuntimeError(f"PgBouncer wrote no {pidfile} within {START_SECONDS:g} s")


def _wait_for_port(port: int, bouncer: PgBouncer) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.01)
    raise RuntimeError(f"PgBouncer does not listen on {port}:\n{bouncer.log}")


def _stop(pid: int) -> None:
    """SIGTERM (PgBouncer's immediate shutdown), then wait for the process to be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
