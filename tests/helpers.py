"""Small database helpers shared by the tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, MetaData, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus
from tests.models import Base, Effect, Item


@asynccontextmanager
async def configured(settings: curate.CurateSettings) -> AsyncIterator[curate.Runtime]:
    """curate configured with ``settings``, the test tables created; closed afterwards."""
    runtime = curate.configure(settings)
    try:
        async with (await runtime.database.engine()).begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield runtime
    finally:
        await runtime.close()


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on now (the server under test binds it next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def insert_items(
    engine: AsyncEngine, count: int, status: ProcessingStatus | None = ProcessingStatus.Queued
) -> list[int]:
    rows = [{"id": i, "payload": f"item {i}", "work_status": status} for i in range(1, count + 1)]
    async with engine.begin() as conn:
        await conn.execute(insert(Item), rows)
    return [row["id"] for row in rows]


async def status_counts(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(Item.work_status, func.count()).group_by(Item.work_status)  # type: ignore[attr-defined]
        )
        return Counter({(status.value if status else "None"): n for status, n in result})


async def item_row(engine: AsyncEngine, item_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(Item.__table__).where(Item.id == item_id))).one()


async def effects_per_item(engine: AsyncEngine) -> Counter[int]:
    async with engine.connect() as conn:
        result = await conn.execute(select(Effect.item_id, func.count()).group_by(Effect.item_id))
        return Counter(dict(result.all()))


async def noop(item_id: Any, session: AsyncSession) -> None:
    """A service that does nothing: what is tested is curate around it."""


async def create_table(engine: AsyncEngine, name: str, *columns: Column[Any]) -> Table:
    """A plain table of the test's own (not an ORM model), created in the test's schema."""
    table = Table(name, MetaData(), *columns)
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    return table


@asynccontextmanager
async def worker_runtimes(
    settings: curate.CurateSettings, count: int
) -> AsyncIterator[list[curate.Runtime]]:
    """``count`` workers on the test's database, as ``count`` processes would be: runtimes
    with their own worker ids (``worker-0``, ...), engines and pools."""
    workers = [
        curate.Runtime(settings.model_copy(update={"worker_id": f"worker-{n}"}))
        for n in range(count)
    ]
    try:
        yield workers
    finally:
        for worker in workers:
            await worker.close()


async def run_migration_step(engine: AsyncEngine, step: Callable[[], None]) -> None:
    """Run ``step`` (an Alembic migration's body, e.g. ``create_curate_tables``) in one
    transaction on ``engine``, as Alembic would run it."""

    def in_context(connection: Any) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            step()

    async with engine.begin() as conn:
        await conn.run_sync(in_context)


async def worker_sessions(admin: AsyncEngine, worker_id: str, condition: str = "true") -> int:
    """The sessions of the worker ``worker_id`` that match ``condition`` (SQL over
    ``pg_stat_activity``), as the server sees them, by the ``application_name`` curate gives."""
    async with admin.connect() as conn:
        count = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                f" WHERE application_name = :name AND ({condition})"
            ),
            {"name": f"curate {worker_id}"},
        )
    assert isinstance(count, int)
    return count


ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def curate_run(
    env: dict[str, str], worker_id: str, log: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``curate run ARGS`` as worker ``worker_id`` (its output in ``log``), in the repository;
    stopped by SIGTERM at the end if it still runs (killed if it will not stop)."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "curate"), "run", *args],
        cwd=ROOT,
        env={**env, "CURATE_WORKER_ID": worker_id},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
