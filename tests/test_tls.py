"""TLS and the URLs providers hand out, against a server that takes TLS connections only.

The server (tests/dedicated_server.py) has a self-signed certificate made here with
``openssl``; its ``pg_hba.conf`` rejects every connection without TLS, and wants a password
(scram) from the application's role, whose password has the characters providers
percent-encode in their URLs.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

import curate
from curate.db.own_tables import create_own_tables
from curate.errors import ConfigurationError
from tests.dedicated_server import DedicatedServer, dedicated_server
from tests.helpers import insert_items, status_counts
from tests.models import Base, Item

ROLE = "app"
PASSWORD = "p@ss:w/rd%#?1"
"""Every character that must be %-escaped in a URL's password."""
DATABASE = "tls_app"


def certificate(directory: Path, name: str) -> None:
    """``<name>.crt``, a self-signed certificate for localhost and 127.0.0.1, and its key
    ``<name>.key`` (PEM)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's certificate (``server.crt``, its own CA) and a stranger's
    (``other.crt``), in a directory the test reads."""
    directory = tmp_path_factory.mktemp("tls")
    certificate(directory, "server")
    certificate(directory, "other")
    return directory


@pytest.fixture(scope="module")
def tls_server(certificates: Path) -> Iterator[DedicatedServer]:
    server_files = {
        name: (certificates / name).read_bytes() for name in ("server.crt", "server.key")
    }
    with dedicated_server(
        conf=["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"],
        hba=[
            "local all all trust",
            "hostnossl all all 127.0.0.1/32 reject",
            f"hostssl all {ROLE} 127.0.0.1/32 scram-sha-256",
            "hostssl all postgres 127.0.0.1/32 trust",
        ],
        files=server_files,
    ) as server:
        with ThreadPoolExecutor(max_workers=1) as apart:  # clear of the tests' event loops
            apart.submit(asyncio.run, _create_role(server)).result()
        yield server


async def _create_role(server: DedicatedServer) -> None:
    admin = await asyncpg.connect(server.url(query="sslmode=require"))
    try:
        assert await admin.fetchval("SHOW data_directory") == str(server.data_dir)
        escaped = PASSWORD.replace("'", "''")
        await admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{escaped}'")
        await admin.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    finally:
        await admin.close()


def app_url(server: DedicatedServer, query: str, scheme: str = "postgresql") -> str:
    """The URL a provider gives: the password %-escaped, TLS in the query."""
    url = server.url(ROLE, PASSWORD, DATABASE, query)
    assert quote(PASSWORD, safe="") in url
    return scheme + url.removeprefix("postgresql")


@asynccontextmanager
async def worker(url: str) -> AsyncIterator[curate.Runtime]:
    """A worker on ``url``, in a schema of its own (the database is the module's)."""
    schema = f"tls_{secrets.token_hex(4)}"
    runtime = curate.Runtime(
        curate.CurateSettings(database_url=url, database_schema=schema, worker_id=schema)
    )
    try:
        yield runtime
    finally:
        await runtime.close()


async def encrypted_connections(runtime: curate.Runtime) -> list[bool]:
    """``pg_stat_ssl.ssl`` of each of the worker's connections, as the server sees them."""
    async with (await runtime.database.engine()).connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                " WHERE a.application_name = :name"
            ),
            {"name": f"curate {runtime.settings.worker_id}"},
        )
        return list(rows.scalars())


async def noop(item_id: int, session: AsyncSession) -> None:
    """Nothing: what is tested is curate's connection around it."""


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
async def test_a_providers_url_with_sslmode_require_runs_a_workflow(
    tls_server: DedicatedServer, scheme: str
) -> None:
    async with worker(app_url(tls_server, "sslmode=require", scheme)) as runtime:
        engine = await runtime.database.engine()
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {runtime.settings.database_schema}"))
            await conn.run_sync(Base.metadata.create_all)
            await create_own_tables(conn)
        await insert_items(engine, 3)
        result = await curate.Workflow("work", model=Item, service=noop).run(runtime)
        assert result.completed == 3
        assert await status_counts(engine) == {"Complete": 3}
        assert await encrypted_connections(runtime) == [True]


@pytest.mark.parametrize("mode", ["verify-full", "verify-ca", "require"])
async def test_the_servers_certificate_verified_against_sslrootcert(
    tls_server: DedicatedServer, certificates: Path, mode: str
) -> None:
    query = f"sslmode={mode}&sslrootcert={certificates / 'server.crt'}"
    async with worker(app_url(tls_server, query)) as runtime:
        assert await encrypted_connections(runtime) == [True]


async def test_a_certificate_signed_by_another_ca_is_refused_clearly(
    tls_server: DedicatedServer, certificates: Path
) -> None:
    query = f"sslmode=verify-full&sslrootcert={certificates / 'other.crt'}"
    async with worker(app_url(tls_server, query)) as runtime:
        with pytest.raises(ConfigurationError) as refused:
            await encrypted_connections(runtime)
        assert str(refused.value) == (
            "the database server's TLS certificate is not trusted (self-signed certificate):"
            " check sslrootcert in CURATE_DATABASE_URL (the CA that signed the server's"
            " certificate) and, with sslmode=verify-full, that the URL's host is one the"
            " certificate names"
        )
        result = await curate.Workflow("work", model=Item, service=noop).run(runtime)
        assert result.errors == [f"ConfigurationError: {refused.value}"]


async def test_without_tls_the_server_refuses(tls_server: DedicatedServer) -> None:
    """What proves the tests above ran over TLS: this server takes nothing else."""
    async with worker(app_url(tls_server, "sslmode=disable")) as runtime:
        with pytest.raises(Exception, match="no encryption"):
            await encrypted_connections(runtime)


def test_a_percent_encoded_password_is_read_as_the_provider_meant() -> None:
    url = f"postgres://{ROLE}:{quote(PASSWORD, safe='')}@db.example.com:5432/{DATABASE}"
    settings = curate.CurateSettings(database_url=url + "?sslmode=verify-full")
    parsed = make_url(settings.database_url or "")
    assert (parsed.drivername, parsed.username, parsed.password) == (
        "postgresql+asyncpg",
        ROLE,
        PASSWORD,
    )


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (
            "sslmode=verify-full&sslrootcert=/no/such/ca.crt",
            "CURATE_DATABASE_URL: sslrootcert='/no/such/ca.crt' cannot be read as CA"
            " certificates: [Errno 2] No such file or directory",
        ),
        (
            "sslrootcert=/etc/hostname",
            "CURATE_DATABASE_URL: sslrootcert needs sslmode=verify-full (or verify-ca,"
            " require) beside it, not None",
        ),
        (
            "sslmode=prefer&sslrootcert=/etc/hostname",
            "CURATE_DATABASE_URL: sslrootcert needs sslmode=verify-full (or verify-ca,"
            " require) beside it, not 'prefer'",
        ),
        (
            "sslmode=require&sslrootcert=system",
            "CURATE_DATABASE_URL: sslrootcert=system needs sslmode=verify-full",
        ),
    ],
)
def test_an_unusable_sslrootcert_is_refused_at_start(query: str, error: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        curate.CurateSettings(database_url=f"postgresql://app@db.example.com/app?{query}")
    assert error in str(refused.value)


def test_sslrootcert_system_and_the_settings_json_are_accepted(certificates: Path) -> None:
    curate.CurateSettings(
        database_url="postgresql://app@db.example.com/app?sslmode=verify-full&sslrootcert=system"
    )
    curate.CurateSettings(
        database_url="postgresql://app@db.example.com/app",
        database_connect_args={
            "ssl": "verify-full",
            "sslrootcert": str(certificates / "server.crt"),
        },
    )
