"""A PostgreSQL of a test's own, for server settings the shared server must never get.

The machine's server on 127.0.0.1:5432 is shared and must not be reconfigured, so a test
that needs a small ``max_connections``, TLS or its own ``pg_hba.conf`` starts one here:
Debian's ``initdb`` and ``pg_ctl`` in a temporary directory, as the ``postgres`` user when
the tests run as root (the server refuses to run as root), on a free port of 127.0.0.1
(and of the other addresses given, such as a test host's link: `tests.netns`).
It is stopped and deleted however the test ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.helpers import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
TRUST_HBA = ("local all all trust", "host all all 127.0.0.1/32 trust")
"""The default ``pg_hba.conf``: anyone from this machine, no password."""


@dataclass(frozen=True)
class DedicatedServer:
    """A running server of the test's own."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"

    def url(
        self,
        user: str = "postgres",
        password: str | None = None,
        database: str = "postgres",
        query: str = "",
    ) -> str:
        """A ``postgresql://`` URL of this server; the password %-escaped as a provider
        gives it, ``query`` appended as it is (``sslmode=require``)."""
        credentials = quote(user, safe="")
        if password is not None:
            credentials += ":" + quote(password, safe="")
        suffix = f"?{query}" if query else ""
        return f"postgresql://{credentials}@{self.host}:{self.port}/{database}{suffix}"


@contextlib.contextmanager
def dedicated_server(
    conf: Sequence[str] = (),
    hba: Sequence[str] = TRUST_HBA,
    files: Mapping[str, bytes] = {},
    listen: Sequence[str] = ("127.0.0.1",),
) -> Iterator[DedicatedServer]:
    """Start a server with ``conf`` lines added to its ``postgresql.conf``, ``hba`` as its
    whole ``pg_hba.conf`` and ``files`` written into its data directory (owner-only, as
    the server wants its TLS key), listening on the addresses ``listen`` (the first is
    the URL's host; the others need their lines in ``hba``); stop and delete it on the
    way out."""
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="curate-pg-"))
    data_dir = root / "data"
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        _run(owner, BIN / "initdb", "-D", data_dir, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        port = free_port()
        settings = [
            f"port = {port}",
            f"listen_addresses = '{','.join(listen)}'",
            f"unix_socket_directories = '{root}'",
            "fsync = off",
            *conf,
        ]
        base = (data_dir / "postgresql.conf").read_text()
        _write(owner, data_dir / "postgresql.conf", base + "\n".join(settings) + "\n")
        _write(owner, data_dir / "pg_hba.conf", "\n".join(hba) + "\n")
        for name, content in files.items():
            _write(owner, data_dir / name, content)
        _run(owner, BIN / "pg_ctl", "-D", data_dir, "-l", root / "server.log", "-w", "start")
        try:
            yield DedicatedServer(data_dir, port, listen[0])
        finally:
            _run(owner, BIN / "pg_ctl", "-D", data_dir, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(owner: pwd.struct_passwd | None, *command: str | Path) -> None:
    """Run a server tool as ``owner``; its output is in the error if it fails."""
    try:
        subprocess.run(
            [str(part) for part in command],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            cwd="/",
        )
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{command[0]} failed: {exc.stdout}{exc.stderr}") from exc


def _write(owner: pwd.struct_passwd | None, path: Path, content: str | bytes) -> None:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(0o600)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
