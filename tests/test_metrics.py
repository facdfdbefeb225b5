"""Prometheus metrics, the /metrics mounts and JSON logs, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import curate
from curate import ProcessingStatus, RetryPolicy, Workflow
from curate.contrib.fastapi_metrics import metrics_router
from curate.metrics import CurateMetrics, install_metrics, refresh_queue_gauges, start_exporter
from curate.testing import wait_until
from tests.helpers import free_port, insert_items
from tests.models import Item

ROOT = Path(__file__).resolve().parent.parent


async def mixed(item_id: int, session: AsyncSession) -> None:
    """Items 1-6 complete, 7-8 fail for good, 9-10 fail and are retried (later)."""
    if item_id in (7, 8):
        raise curate.NonRetryableError(f"bad item {item_id}")
    if item_id in (9, 10):
        raise ValueError(f"flaky item {item_id}")


def work() -> Workflow:
    return Workflow(
        "work",
        model=Item,
        service=mixed,
        batch_size=10,
        retry=RetryPolicy(max_attempts=3, base_seconds=600, jitter=False),
    )


def value(metrics: CurateMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"workflow": "work", **labels})


async def test_counters_and_histograms_after_a_run(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    metrics = install_metrics(runtime)
    assert install_metrics(runtime) is metrics
    await insert_items(engine, 10)

    result = await work().run()

    assert (result.completed, result.failed, result.retried) == (6, 2, 2)
    assert value(metrics, "curate_items_completed_total") == 6
    assert value(metrics, "curate_items_failed_total") == 2
    assert value(metrics, "curate_items_retried_total") == 2
    assert value(metrics, "curate_items_dropped_total") is None  # never touched
    assert value(metrics, "curate_item_duration_seconds_count") == 10
    assert (value(metrics, "curate_item_duration_seconds_sum") or 0) > 0
    # a full batch of 10, then an empty claim that ends the run
    assert value(metrics, "curate_claim_duration_seconds_count") == 2
    assert value(metrics, "curate_item_duration_seconds_bucket", le="+Inf") == 10


async def test_rescued_rows_are_counted(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    metrics = install_metrics(runtime)
    flow = work()
    runtime.register(flow)
    await insert_items(engine, 3)
    async with engine.begin() as conn:  # two rows held by a worker that died an hour ago
        await conn.execute(
            update(Item)
            .where(Item.id <= 2)
            .values(
                work_status=ProcessingStatus.Processing,
                work_claimed_by="dead-worker",
                work_attempts=1,
                work_lease_until=text("now() - interval '1 hour'"),
            )
        )
    assert await runtime.rescue() == 2
    assert value(metrics, "curate_items_rescued_total") == 2


async def age_oldest(engine: AsyncEngine, seconds: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(Item)
            .where(Item.id == 1)
            .values(updated_at=text(f"now() - interval '{seconds} seconds'"))
        )


async def test_queue_gauges_after_refresh(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    metrics = install_metrics(runtime)
    flow = work()
    await refresh_queue_gauges(runtime, [flow])
    assert value(metrics, "curate_queue_depth") == 0
    assert value(metrics, "curate_oldest_queued_age_seconds") == 0

    await insert_items(engine, 5)
    await age_oldest(engine, 120)
    async with engine.begin() as conn:  # not queued: not counted
        await conn.execute(update(Item).where(Item.id == 5).values(work_status=None))
    await refresh_queue_gauges(runtime, [flow])

    assert value(metrics, "curate_queue_depth") == 4
    age = value(metrics, "curate_oldest_queued_age_seconds")
    assert age is not None and 120 <= age < 180


async def test_get_metrics_through_fastapi(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    flow = work()
    await insert_items(engine, 10)
    app = FastAPI()
    app.include_router(metrics_router([flow]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        first = await client.get("/metrics")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/plain")
        assert 'curate_queue_depth{workflow="work"} 10.0' in first.text

        await flow.run()
        second = await client.get("/metrics")

    lines = second.text.splitlines()
    assert 'curate_queue_depth{workflow="work"} 2.0' in lines  # the two retries wait
    assert 'curate_items_completed_total{workflow="work"} 6.0' in lines
    assert 'curate_items_failed_total{workflow="work"} 2.0' in lines
    assert "# TYPE curate_item_duration_seconds histogram" in lines


async def test_standalone_exporter(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    await insert_items(engine, 3)
    server = await start_exporter(runtime, [work()], port=0, host="127.0.0.1")
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            found = await client.get("/metrics")
            missing = await client.get("/elsewhere")
    finally:
        server.close()
        await server.wait_closed()
    assert found.status_code == 200
    assert 'curate_queue_depth{workflow="work"} 3.0' in found.text.splitlines()
    assert missing.status_code == 404


SCRIPT = """
import asyncio
import curate
from curate import RetryPolicy, Workflow
from tests.models import Item

async def fails(item_id, session):
    raise ValueError("no luck")

curate.configure_logging("INFO", json=True)
curate.configure()
flow = Workflow("work", model=Item, service=fails, retry=RetryPolicy(max_attempts=1))
asyncio.run(flow.run())
"""


async def test_json_logs_carry_the_item_context(
    runtime: curate.Runtime, engine: AsyncEngine, database_url: str, schema: str
) -> None:
    await insert_items(engine, 2)
    env = {
        **os.environ,
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "CURATE_WORKER_ID": "json-worker",
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    records = [json.loads(line)["record"] for line in stderr.decode().splitlines() if line.strip()]
    failures = [r for r in records if r["level"]["name"] == "ERROR"]
    assert len(failures) == 2
    assert {(r["extra"]["workflow"], r["extra"]["worker"]) for r in failures} == {
        ("work", "json-worker")
    }
    assert sorted(r["extra"]["item_id"] for r in failures) == ["1", "2"]
    assert {r["extra"]["attempt"] for r in failures} == {1}


async def test_metrics_lifespan_attaches_the_metrics_at_start(
    settings: curate.CurateSettings,
) -> None:
    from curate.contrib.fastapi import curate_lifespan
    from curate.contrib.fastapi_metrics import metrics_lifespan

    app = FastAPI(lifespan=curate_lifespan([], settings=settings, lifespan=metrics_lifespan))
    async with app.router.lifespan_context(app):
        runtime = curate.get_runtime()
        metrics = install_metrics(runtime)
        assert runtime.item_hooks == [metrics.item_hook]
        assert runtime.observers == [metrics]


async def test_curate_run_serves_metrics(
    runtime: curate.Runtime, engine: AsyncEngine, database_url: str, schema: str
) -> None:
    await insert_items(engine, 5)
    port = free_port()
    env = {
        **os.environ,
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "CURATE_APP": "tests.cli_app:WORKFLOWS",
        "CURATE_LOG_LEVEL": "WARNING",
    }
    worker = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("curate")),
        *("run", "--workflow", "work", "--metrics-port", str(port)),
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    scraped: list[str] = []

    async def all_counted() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
        except httpx.TransportError:
            return False
        scraped[:] = response.text.splitlines()
        return 'curate_items_completed_total{workflow="work"} 5.0' in scraped

    try:
        await wait_until(all_counted, what="the worker's /metrics to count 5 completed items")
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(worker.communicate(), 30)
    assert worker.returncode == 0, err.decode()
    assert 'curate_queue_depth{workflow="work"} 0.0' in scraped
