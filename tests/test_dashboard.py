"""The router's HTML dashboard, rendered on the real database and read without a browser
(the browser test is tests/test_dashboard_browser.py)."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from curate import ProcessingStatus
from curate.contrib.fastapi import curate_router
from tests.cli_app import WORKFLOWS
from tests.models import Item
from tests.test_fastapi import (
    LEAKY,
    client,
    hide,
    insert_leaky_error,
    insert_rows,
    require_token,
    router_app,
)

NASTY = "<script>alert('x')</script> & \"quotes\""


def count_cell(page: str, key: str) -> str:
    """The first workflow's count for ``key`` (the page lists work first)."""
    match = re.search(rf'data-count="{key}">(\d+)<', page)
    assert match is not None, key
    return match.group(1)


async def test_dashboard_shows_counts_throughput_and_errors(engine: AsyncEngine) -> None:
    await insert_rows(engine)
    async with client(router_app()) as http:
        response = await http.get("/curate/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    # No other site may frame the page and overlay its buttons.
    assert response.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    page = response.text
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page
    assert '<section id="workflow-work"' in page and '<section id="workflow-seed"' in page
    counts = {k: count_cell(page, k) for k in ("queued", "processing", "complete", "error")}
    assert counts == {"queued": "2", "processing": "2", "complete": "1", "error": "2"}
    assert 'data-figure="throughput">' in page and "/min" in page
    assert "<code>ValueError: row N</code>" in page  # the group's message
    assert "<code>ValueError: row 4</code>" in page  # its example
    assert "Refreshes every 5 s." in page
    assert '<meta http-equiv="refresh" content="5">' in page  # inside <noscript>
    # No requeue endpoint, so no requeue buttons.
    assert "<button" not in page


async def test_dashboard_escapes_error_messages(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Item),
            [{"id": 1, "work_status": ProcessingStatus.Error, "work_error": NASTY}],
        )
    async with client(router_app()) as http:
        page = (await http.get("/curate/dashboard")).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    # The page's own script is the only one.
    assert page.count("<script>") == 1


async def test_dashboard_shows_errors_through_redact_error(engine: AsyncEngine) -> None:
    await insert_leaky_error(engine)
    async with client(router_app()) as http:
        page = (await http.get("/curate/dashboard")).text
    async with client(router_app(redact_error=hide)) as http:
        hidden = (await http.get("/curate/dashboard")).text
    shown = (
        "HTTPError: unauthorized at https://api.example.com/x?access_token=&lt;redacted&gt;"
        " for &lt;email&gt;; headers {&#x27;Authorization&#x27;: &lt;redacted&gt;}"
    )
    assert page.count(f"<code>{shown}</code>") == 2  # the group's message and its example
    assert hidden.count("<code>HTTPError: (hidden)</code>") == 2
    for secret in ("access_token=abc", "ann@example.org", "eyJ"):
        assert secret in LEAKY and secret not in page and secret not in hidden


async def test_dashboard_requeue_buttons_with_auth(engine: AsyncEngine) -> None:
    await insert_rows(engine)
    app = FastAPI()
    app.include_router(
        curate_router(WORKFLOWS, requeue_auth=require_token, dashboard_refresh_seconds=0.5),
        prefix="/ops/curate",
    )
    async with client(app) as http:
        page = (await http.get("/ops/curate/dashboard")).text
    # One button per workflow, posting to the mounted requeue endpoint under the prefix;
    # disabled where there is nothing in Error.
    assert (
        '<button type="button" data-post-url="/ops/curate/workflows/work/requeue"'
        ' aria-label="Re-queue the 2 rows in Error in work">Re-queue errors (2)</button>'
    ) in page
    assert 'data-post-url="/ops/curate/workflows/seed/requeue" disabled' in page
    assert "Refreshes every 0.5 s." in page
    assert "/dashboard" not in str(app.openapi()["paths"])  # a page, not an API


def test_refresh_must_be_positive() -> None:
    with pytest.raises(ValueError, match="dashboard_refresh_seconds must be > 0"):
        curate_router(WORKFLOWS, dashboard_refresh_seconds=0)
