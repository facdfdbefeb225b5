"""The runtime across event loops, and the public surface."""

from __future__ import annotations

import asyncio

from sqlalchemy import insert

import curate
from tests.helpers import noop
from tests.models import Base, Item


def test_each_new_event_loop_gets_working_connections(settings: curate.CurateSettings) -> None:
    """asyncio.run twice with one runtime: the second loop must not reuse the first's pool."""
    runtime = curate.configure(settings)
    flow = curate.Workflow("work", model=Item, service=noop)

    async def first_loop() -> int:
        engine = await runtime.database.engine()
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.execute(insert(Item), [{"id": i, "work_status": "Queued"} for i in (1, 2)])
        return (await flow.run()).completed

    async def second_loop() -> int:
        engine = await runtime.database.engine()
        async with engine.begin() as conn:
            await conn.execute(insert(Item), [{"id": 3, "work_status": "Queued"}])
        completed = (await flow.run()).completed
        await runtime.database.dispose()
        return completed

    assert asyncio.run(first_loop()) == 2
    assert asyncio.run(second_loop()) == 1


def test_public_surface_is_deliberate() -> None:
    assert sorted(curate.__all__) == curate.__all__
    for name in curate.__all__:
        assert hasattr(curate, name), name
    assert {"Workflow", "run_job_loop", "CurateSettings", "RetryPolicy"} <= set(curate.__all__)


def test_importing_curate_adds_no_log_sink() -> None:
    import subprocess
    import sys

    code = "import loguru; n = len(loguru.logger._core.handlers); import curate; "
    code += "assert len(loguru.logger._core.handlers) == n"
    subprocess.run([sys.executable, "-c", code], check=True)
