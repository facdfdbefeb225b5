"""The FastAPI integration under several uvicorn worker processes: every item once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate.testing import wait_until
from tests.executions import ExecutionTable
from tests.helpers import effects_per_item, free_port, insert_items, status_counts
from tests.models import Item
from tests.multiworker_app import work

ROOT = Path(__file__).resolve().parents[1]


def start_uvicorn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``uvicorn --workers 2`` serving tests.multiworker_app on a free port."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "uvicorn"),
            "tests.multiworker_app:app",
            "--workers",
            "2",
            "--port",
            str(free_port()),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def test_two_uvicorn_workers_share_the_queue_and_do_each_item_once(
    runtime: curate.Runtime, engine: AsyncEngine, database_url: str, schema: str, tmp_path: Path
) -> None:
    await insert_items(engine, 600, status=None)
    await ExecutionTable.create(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_")}
    env |= {"CURATE_DATABASE_URL": database_url, "CURATE_DATABASE_SCHEMA": schema}
    server = start_uvicorn(env, tmp_path / "uvicorn.log")
    try:

        async def both_listening() -> bool:
            async with engine.connect() as conn:
                listeners = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE query LIKE 'LISTEN %curate_work%'"
                    )
                )
            return bool(listeners and listeners >= 2)

        await wait_until(both_listening, seconds=60, what="both workers listening")
        sessions = await runtime.database.sessionmaker()
        async with sessions() as session, session.begin():
            await work.queue(session, list(range(1, 601)))  # one NOTIFY wakes both

        async def drained() -> bool:
            return await status_counts(engine) == {"Complete": 600}

        await wait_until(drained, seconds=60, what="600 items Complete")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    effects = await effects_per_item(engine)
    assert len(effects) == 600 and set(effects.values()) == {1}
    await ExecutionTable(Item, "work", engine).assert_once_each(range(1, 601))
    async with engine.connect() as conn:
        processes = await conn.scalar(text("SELECT count(DISTINCT note) FROM effects"))
    assert processes == 2, (tmp_path / "uvicorn.log").read_text()[-2000:]
