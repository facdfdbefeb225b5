"""curate.contrib.fastapi on the real database: the lifespan runs the workflows, the
router reports and re-queues."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import ProcessingStatus, scheduling
from curate.contrib.fastapi import curate_lifespan, curate_router
from curate.testing import wait_until
from tests.cli_app import WORKFLOWS, work
from tests.helpers import item_row
from tests.models import Item, SeedItem, SeedStatus

SEED_ID = uuid.UUID("3f2c9a0e-8d1b-4c55-9a7e-1b2c3d4e5f60")


async def require_token(x_token: str | None = Header(default=None)) -> None:
    """The app's auth dependency: a fixed token."""
    if x_token != "secret":
        raise HTTPException(status_code=401, detail="bad token")


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


def router_app(**kwargs: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(curate_router(WORKFLOWS, **kwargs), prefix="/curate")
    return app


async def insert_rows(engine: AsyncEngine) -> None:
    """work: 2 queued, 1 complete, 2 in Error (one group), 1 Processing past its lease,
    1 Processing under a live lease; seed: one complete row."""
    now = datetime.now(UTC)
    q, p = ProcessingStatus.Queued, ProcessingStatus.Processing
    rows: list[dict[str, Any]] = [
        {"id": 1, "work_status": q},
        {"id": 2, "work_status": q},
        {"id": 3, "work_status": ProcessingStatus.Complete},
        {"id": 4, "work_status": ProcessingStatus.Error, "work_error": "ValueError: row 4\ntb"},
        {"id": 5, "work_status": ProcessingStatus.Error, "work_error": "ValueError: row 5"},
        {"id": 6, "work_status": p, "work_lease_until": now - timedelta(minutes=1)},
        {"id": 7, "work_status": p, "work_lease_until": now + timedelta(hours=1)},
    ]
    for row in rows:  # every row has every key: an executemany takes the first row's
        row.setdefault("work_error", None)
        row.setdefault("work_lease_until", None)
        row.update(work_attempts=1, work_claimed_by="w1")
    async with engine.begin() as conn:
        await conn.execute(insert(Item), rows)
        await conn.execute(insert(SeedItem), [{"id": SEED_ID, "status": SeedStatus.complete}])


async def test_lifespan_runs_the_workflows_and_composes(
    settings: curate.CurateSettings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(Item), [{"id": 1, "work_status": ProcessingStatus.Queued}])
    events: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # curate is configured before the app's own lifespan runs, and still is after it.
        assert curate.get_runtime().settings is settings
        events.append("app start")
        yield {"answer": 42}
        events.append("app stop")

    app = FastAPI(lifespan=curate_lifespan([work], settings=settings, lifespan=own))
    app.include_router(curate_router([work]))
    async with app.router.lifespan_context(app) as state, client(app) as http:
        assert state == {"answer": 42}
        assert scheduling.get_scheduler().get_job(work.job_id) is not None

        async def done() -> bool:
            item = (await http.get("/workflows/work/items/1")).json()
            return bool(item["status"] == "Complete")

        await wait_until(done, seconds=15, what="item 1 to complete")
        assert events == ["app start"]
    assert events == ["app start", "app stop"]
    assert scheduling._scheduler is None  # shut down
    row = await item_row(engine, 1)
    assert (row.work_attempts, row.work_claimed_by) == (1, "test-worker")


async def test_lifespan_stops_on_bad_settings(
    settings: curate.CurateSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORK_SCHEDULER_BATCH_SIZE", "0")
    app = FastAPI(lifespan=curate_lifespan([work], settings=settings))
    with pytest.raises(curate.ConfigurationError, match="WORK_SCHEDULER_BATCH_SIZE"):
        async with app.router.lifespan_context(app):
            pass


async def test_workflows_report_counts_ages_leases_and_errors(engine: AsyncEngine) -> None:
    await insert_rows(engine)
    async with client(router_app()) as http:
        response = await http.get("/curate/workflows")
        assert response.status_code == 200, response.text
        report = response.json()
        one = (await http.get("/curate/workflows/work")).json()

    assert [w["name"] for w in report["workflows"]] == ["work", "seed"]
    assert report["failures_found"] is True
    listed = report["workflows"][0]
    assert listed == one
    assert one["counts"] == {"queued": 2, "processing": 2, "complete": 1, "error": 2, "other": 0}
    assert one["table"] == "items"
    assert one["expired_leases"] == 1
    assert one["oldest_queued_seconds"] >= 0
    assert one["errors"] == [
        {
            "message": "ValueError: row N",
            "rows": 2,
            "last_seen": one["errors"][0]["last_seen"],
            "example": "ValueError: row 4",
        }
    ]
    seed = report["workflows"][1]
    assert seed["counts"]["complete"] == 1
    assert (seed["expired_leases"], seed["oldest_queued_seconds"]) == (None, None)


async def test_item_state_and_bad_ids(engine: AsyncEngine) -> None:
    await insert_rows(engine)
    async with client(router_app()) as http:
        item = (await http.get("/curate/workflows/work/items/4")).json()
        assert item["status"] == "Error"
        assert item["error"] == "ValueError: row 4\ntb"
        assert (item["id"], item["attempts"], item["claimed_by"]) == (4, 1, "w1")
        assert item["run_after"] is None and item["lease_until"] is None
        leased = (await http.get("/curate/workflows/work/items/7")).json()
        assert datetime.fromisoformat(leased["lease_until"]) > datetime.now(UTC)

        seed = (await http.get(f"/curate/workflows/seed/items/{SEED_ID}")).json()
        assert (seed["id"], seed["status"], seed["attempts"]) == (str(SEED_ID), "Complete", None)

        absent = await http.get("/curate/workflows/work/items/99")
        assert absent.status_code == 404
        assert absent.json() == {"detail": "no item 99 in items"}
        assert (await http.get(f"/curate/workflows/seed/items/{uuid.uuid4()}")).status_code == 404

        for path, message in [
            ("work/items/abc", "'abc' is not a valid int (the type of items.id)"),
            ("work/items/1.5", "'1.5' is not a valid int (the type of items.id)"),
            ("work/items/99999999999", "'99999999999' is out of range for items.id"),
            ("seed/items/123", "'123' is not a valid UUID (the type of seed_items.id)"),
        ]:
            response = await http.get(f"/curate/workflows/{path}")
            assert response.status_code == 422, path
            [problem] = response.json()["detail"]
            assert problem["loc"] == ["path", "item_id"]
            assert problem["msg"].startswith(message)

        unknown = await http.get("/curate/workflows/nope/items/1")
        assert unknown.status_code == 404
        assert unknown.json() == {"detail": "no workflow named 'nope'; known: work, seed"}
        assert (await http.get("/curate/workflows/nope")).status_code == 404


async def test_requeue_is_not_mounted_without_auth(engine: AsyncEngine) -> None:
    await insert_rows(engine)
    app = router_app()
    async with client(app) as http:
        response = await http.post("/curate/workflows/work/requeue", json={"errors": True})
    assert response.status_code in (404, 405)
    assert not any(path.endswith("/requeue") for path in app.openapi()["paths"])
    assert (await item_row(engine, 4)).work_status is ProcessingStatus.Error


async def test_requeue_with_auth(engine: AsyncEngine) -> None:
    await insert_rows(engine)
    app = router_app(requeue_auth=require_token)
    assert "/curate/workflows/{name}/requeue" in app.openapi()["paths"]
    url = "/curate/workflows/work/requeue"
    async with client(app) as http:
        refused = await http.post(url, json={"errors": True})
        assert refused.status_code == 401
        assert (await item_row(engine, 4)).work_status is ProcessingStatus.Error

        http.headers["X-Token"] = "secret"
        narrowed = await http.post(url, json={"errors": True, "ids": ["4"]})
        assert narrowed.json() == {"workflow": "work", "requeued": 1}
        stuck = await http.post(url, json={"stuck": True})
        assert stuck.json() == {"workflow": "work", "requeued": 1}  # 6, not 7 (live lease)
        by_text = await http.post(url, json={"errors": True, "where_error": "ROW 5"})
        assert by_text.json()["requeued"] == 1
        nothing = await http.post(url, json={"errors": True})
        assert nothing.json()["requeued"] == 0

    for item_id in (4, 5, 6):
        row = await item_row(engine, item_id)
        assert (row.work_status, row.work_attempts, row.work_error) == (
            ProcessingStatus.Queued,
            0,
            None,
        )
    assert (await item_row(engine, 7)).work_status is ProcessingStatus.Processing


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "say which rows to re-queue"),
        ({"ids": ["x"]}, "'x' is not a valid int"),
        ({"ids": [2**40]}, "out of range for items.id"),
        ({"errors": "maybe"}, "valid boolean"),
        ({"errors": True, "color": "red"}, "Extra inputs are not permitted"),
        ({"where_error": "a\x00b"}, "String should match pattern"),
        ({"where_error": ""}, "at least 1 character"),
        ([1, 2], "valid dictionary"),
    ],
)
async def test_requeue_rejects_bad_bodies(engine: AsyncEngine, body: Any, message: str) -> None:
    app = router_app(requeue_auth=require_token)
    async with client(app) as http:
        http.headers["X-Token"] = "secret"
        response = await http.post("/curate/workflows/work/requeue", json=body)
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"][0]["msg"]
        unknown = await http.post("/curate/workflows/nope/requeue", json={"errors": True})
        assert unknown.status_code == 404
