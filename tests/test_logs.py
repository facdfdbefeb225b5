"""Logging: the app/CLI set-up shows the item context and routes stdlib loggers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from tests.helpers import insert_items

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import logging
from loguru import logger
import curate

curate.configure_logging("INFO")
logging.getLogger("sqlalchemy.pool").warning("from the standard library")
logging.getLogger("apscheduler.scheduler").warning("said again by curate's listener")
with logger.contextualize(workflow="sitemap_import", item_id="42", attempt=2):
    logger.error("service failed")
logger.debug("hidden below INFO")
"""


def test_configure_logging_shows_context_and_stdlib_records() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    assert any("WARNING" in line and "from the standard library" in line for line in lines)
    assert any("[sitemap_import 42 attempt 2] service failed" in line for line in lines)
    assert not any("hidden below INFO" in line for line in lines)
    assert not any("said again" in line for line in lines)


# --- without any set-up: loguru's default sink, as a script or an app that configured nothing

BUGGY_APP = """
import asyncio
import sys

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import curate
from curate import RetryPolicy, Workflow
from curate.testing import wait_until
from tests.models import Item


async def resize(item_id: int, session: AsyncSession) -> None:
    item = await session.get(Item, item_id)
    item.payload = str(item.widht)  # the bug


work = Workflow(
    "work",
    model=Item,
    service=resize,
    retry=RetryPolicy(max_attempts=2, base_seconds=0, jitter=False),
)


async def run_by_hand() -> None:
    curate.configure()
    while (await work.run()).claimed:
        pass


async def run_in_fastapi() -> None:
    from fastapi import FastAPI

    from curate.contrib.fastapi import curate_lifespan

    app = FastAPI(lifespan=curate_lifespan([work]))
    async with app.router.lifespan_context(app):
        sessionmaker = await curate.get_runtime().database.sessionmaker()

        async def failed_for_good() -> bool:
            async with sessionmaker() as session:
                return await session.scalar(select(Item.work_status)) == "Error"

        await wait_until(failed_for_good, seconds=60, what="the item to fail twice")


asyncio.run(run_in_fastapi() if sys.argv[1] == "fastapi" else run_by_hand())
"""


@pytest.mark.parametrize("where", ["script", "fastapi"])
async def test_without_set_up_each_line_names_the_item_and_a_bug_shows_where(
    where: str, settings: curate.CurateSettings, engine: AsyncEngine, tmp_path: Path
) -> None:
    """No ``configure_logging``: loguru's default sink prints curate's lines, and they still
    say which workflow, item and attempt; the final failure shows the service's line."""
    await insert_items(engine, 1)
    app = tmp_path / "buggy_app.py"  # a file, as an app's is: its lines show in a traceback
    app.write_text(BUGGY_APP)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # tests.models
        "CURATE_DATABASE_URL": settings.database_url or "",
        "CURATE_DATABASE_SCHEMA": settings.database_schema or "",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(app), where],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
        env=env,
    )
    lines = done.stderr.splitlines()
    bug = "AttributeError: 'Item' object has no attribute 'widht'"
    retry = [line for line in lines if "| WARNING  |" in line and "retry in" in line]
    assert [line.split(" - ", 1)[1] for line in retry] == [
        f"[work 1 attempt 1] failed, retry in 0.0 s: {bug}"
    ], done.stderr
    [final] = [i for i, line in enumerate(lines) if "| ERROR    |" in line]
    assert lines[final].endswith(f"[work 1 attempt 2] failed: {bug}"), done.stderr
    after = "\n".join(lines[final:])
    assert "Traceback (most recent call last)" in after, done.stderr
    assert ", in resize" in after and "item.payload = str(item.widht)" in after, after
    # The retry's traceback is there too, at DEBUG (loguru's default sink shows DEBUG).
    assert any("| DEBUG    |" in line and "where the attempt failed" in line for line in lines)
