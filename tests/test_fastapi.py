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
from curate import ProcessingStatus, operations, scheduling
from curate.contrib.fastapi import curate_lifespan, curate_router, redact_secrets
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
    assert not scheduling.scheduler.running  # shut down
    row = await item_row(engine, 1)
    assert (row.work_attempts, row.work_claimed_by.partition("#")[0]) == (1, "test-worker")


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
    ages = listed.pop("oldest_queued_seconds"), one.pop("oldest_queued_seconds")
    assert listed == one  # the same figures; the age grew between the two reads
    assert 0 <= ages[0] <= ages[1]
    counts = {"queued": 2, "processing": 2, "complete": 1, "error": 2, "other": 0, "unset": 0}
    assert one["counts"] == counts
    assert one["table"] == "items"
    assert one["expired_leases"] == 1
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


# --- the router against a browser turned against it -------------------------------------------

OWN_ORIGIN = "http://app"  # the test client's base_url: what the app's own page sends
FORM = "application/x-www-form-urlencoded"
JSON = {"Content-Type": "application/json"}
EVIL = "https://evil.example"
FROM_EVIL = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}  # what a browser adds

# What another site's page can make a signed-in browser send (the browser attaches the
# cookie or cached credentials; here X-Token stands for them), and what the guard answers.
# A body of None: the action's own valid JSON body (VALID).
CROSS_SITE: list[tuple[str, dict[str, str], bytes | None, int]] = [
    (
        "form without fields",
        {"Content-Type": FORM, **FROM_EVIL},
        b"",
        403,
    ),
    (
        "form, urlencoded",
        {"Content-Type": FORM, **FROM_EVIL},
        b"errors=true&reason=x",
        403,
    ),
    (
        "form, text/plain shaped into JSON",
        {"Content-Type": "text/plain", **FROM_EVIL},
        b'{"errors": true, "where_error": "=x"}',
        403,
    ),
    ("no-cors fetch of an untyped body", FROM_EVIL, None, 403),
    ("form, urlencoded, no Origin (an old browser)", {"Content-Type": FORM}, b"errors=true", 415),
    ("text/plain, no Origin", {"Content-Type": "text/plain"}, b'{"errors": true}', 415),
    ("untyped body, no Origin", {}, None, 415),
    ("JSON, a foreign Origin", {**JSON, "Origin": EVIL}, None, 403),
    ("JSON, Origin null (a sandboxed page)", {**JSON, "Origin": "null"}, None, 403),
    ("JSON, another port", {**JSON, "Origin": "http://app:8080"}, None, 403),
    ("JSON, Sec-Fetch-Site: cross-site", {**JSON, "Sec-Fetch-Site": "cross-site"}, None, 403),
    ("JSON, Sec-Fetch-Site: same-site", {**JSON, "Sec-Fetch-Site": "same-site"}, None, 403),
]
VALID = {"requeue": b'{"errors": true}', "pause": b'{"reason": "x"}', "resume": b""}


async def work_state(engine: AsyncEngine) -> tuple[bool, ProcessingStatus]:
    """Whether work is paused, and item 4's status (in Error until re-queued)."""
    [work_status] = (await operations.read_status(engine, [work])).workflows
    return work_status.paused, (await item_row(engine, 4)).work_status


@pytest.mark.parametrize(
    ("action", "after"),
    [
        ("requeue", (False, ProcessingStatus.Queued)),
        ("pause", (True, ProcessingStatus.Error)),
        ("resume", (False, ProcessingStatus.Error)),
    ],
)
async def test_cross_site_writes_are_refused_before_auth(
    engine: AsyncEngine, action: str, after: tuple[bool, ProcessingStatus]
) -> None:
    await insert_rows(engine)
    if action == "resume":
        await operations.pause_workflow(engine, work, "deploy")
    before = await work_state(engine)
    calls: list[str | None] = []

    async def recording_auth(x_token: str | None = Header(default=None)) -> None:
        """The app's auth, with a side effect: it must not run for a refused request."""
        calls.append(x_token)
        if x_token != "secret":
            raise HTTPException(status_code=401, detail="bad token")

    url = f"/curate/workflows/work/{action}"
    async with client(router_app(requeue_auth=recording_auth)) as http:
        http.headers["X-Token"] = "secret"
        for what, headers, body, status in CROSS_SITE:
            sent = VALID[action] if body is None else body
            refused = await http.post(url, content=sent, headers=headers)
            assert refused.status_code == status, (what, refused.text)
            assert isinstance(refused.json()["detail"], str), what
            assert await work_state(engine) == before, what
        assert calls == []  # the guard ran first

        # The dashboard's own request: JSON, from this origin.
        own = {**JSON, "Origin": OWN_ORIGIN, "Sec-Fetch-Site": "same-origin"}
        accepted = await http.post(url, content=VALID[action], headers=own)
        assert accepted.status_code == 200, accepted.text
        assert await work_state(engine) == after
        # A script's (curl's): no Origin, no Sec-Fetch-Site, an empty JSON request.
        bare = await http.post(url, headers={"Content-Type": "application/json; charset=utf-8"})
        assert bare.status_code == (422 if action == "requeue" else 200), bare.text
    assert calls == ["secret"] * 2


async def test_allowed_origins_may_post_from_elsewhere(engine: AsyncEngine) -> None:
    await insert_rows(engine)
    app = router_app(requeue_auth=require_token, allowed_origins=["https://Ops.example:443/"])
    url = "/curate/workflows/work/pause"
    async with client(app) as http:
        http.headers["X-Token"] = "secret"
        other = await http.post(url, json={}, headers={"Origin": "https://other.example"})
        assert other.status_code == 403
        assert other.json() == {
            "detail": "cross-origin request refused: Origin https://other.example is not"
            " http://app (behind a proxy, pass the public origin in allowed_origins)"
        }
        assert await work_state(engine) == (False, ProcessingStatus.Error)
        # A page of the allowed origin, a sibling site: its Sec-Fetch-Site is same-site.
        ops = {"Origin": "https://ops.example", "Sec-Fetch-Site": "same-site"}
        assert (await http.post(url, json={}, headers=ops)).status_code == 200
        # This app's own origin, seen through the Host header, default port spelled out.
        resumed = await http.post(
            "/curate/workflows/work/resume",
            json={},
            headers={"Host": "admin.example", "Origin": "http://admin.example:80"},
        )
        assert resumed.json()["changed"] is True
    for bad in ("ops.example", "https://ops.example/path", "ftp://ops.example", "null"):
        with pytest.raises(ValueError, match=r"allowed_origins: .* is not an origin"):
            curate_router(WORKFLOWS, allowed_origins=[bad])


# --- reads behind read_auth, errors redacted --------------------------------------------------

READS = [
    "/curate/workflows",
    "/curate/workflows/work",
    "/curate/workflows/nope",  # refused before it could list the known names
    "/curate/workflows/work/items/4",
    "/curate/dashboard",
]


async def require_reader(x_reader: str | None = Header(default=None)) -> None:
    if x_reader != "staff":
        raise HTTPException(status_code=401, detail="sign in")


async def test_reads_and_dashboard_need_read_auth(engine: AsyncEngine) -> None:
    await insert_rows(engine)
    app = router_app(read_auth=require_reader, requeue_auth=require_token)
    async with client(app) as http:
        for path in READS:
            refused = await http.get(path)
            assert refused.status_code == 401, path
            assert refused.json() == {"detail": "sign in"}
        http.headers["X-Reader"] = "staff"
        for path in READS:
            assert (await http.get(path)).status_code == (404 if "nope" in path else 200), path
        # Writes answer to requeue_auth, not to read_auth.
        paused = await http.post("/curate/workflows/work/pause", json={})
        assert paused.status_code == 401


LEAKY = (
    "HTTPError: unauthorized at https://api.example.com/x?access_token=abc for ann@example.org;"
    " headers {'Authorization': 'Bearer eyJhbGciOi.eyJzdWIi.sig'}"
)
"""An error's first line quoting an address and two tokens (no digits: its group's
message is the same line)."""


async def insert_leaky_error(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Item),
            [{"id": 1, "work_status": ProcessingStatus.Error, "work_error": f"{LEAKY}\ntb"}],
        )


def hide(text: str) -> str:
    """An app's own redaction: the exception type only."""
    return f"{text.split(' ')[0]} (hidden)"


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        (
            {},
            "HTTPError: unauthorized at https://api.example.com/x?access_token=<redacted>"
            " for <email>; headers {'Authorization': <redacted>}",
        ),
        ({"redact_error": hide}, "HTTPError: (hidden)"),
        ({"redact_error": str}, LEAKY),
    ],
    ids=["default", "the app's", "none"],
)
async def test_error_texts_pass_through_redact_error(
    engine: AsyncEngine, kwargs: dict[str, Any], shown: str
) -> None:
    await insert_leaky_error(engine)
    async with client(router_app(**kwargs)) as http:
        [errors] = (await http.get("/curate/workflows/work")).json()["errors"]
        listed = (await http.get("/curate/workflows")).json()["workflows"][0]["errors"]
        state = (await http.get("/curate/workflows/work/items/1")).json()
    assert listed == [errors]
    assert errors["message"] == errors["example"] == shown
    assert state["error"].split("\n")[0] == shown


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("ValueError: row 4", "ValueError: row 4"),
        ("Key (id)=(5) already exists", "Key (id)=(5) already exists"),
        ("tokens: 5, token_count=3", "tokens: 5, token_count=3"),
        ("send to ann.lee+x@mail.example.co.uk failed", "send to <email> failed"),
        ("postgresql://app:s3cret@db.internal/app", "postgresql://<redacted>@db.internal/app"),
        (
            "GET /x?page=2&api_key=k1&x_token=t2",
            "GET /x?page=2&api_key=<redacted>&x_token=<redacted>",
        ),
        ("Authorization: Basic dXNlcjpwYXNz rejected", "Authorization: <redacted> rejected"),
        ("bearer abc.DEF-1~ expired", "Bearer <redacted> expired"),
        ('{"password": "correct horse", "user": "bob"}', '{"password": <redacted>, "user": "bob"}'),
        ("X-Api-Key: k1; SESSION_ID=s2", "X-Api-Key: <redacted>; SESSION_ID=<redacted>"),
    ],
)
def test_redact_secrets(text: str, redacted: str) -> None:
    assert redact_secrets(text) == redacted
