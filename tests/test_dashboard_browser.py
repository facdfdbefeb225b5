"""The dashboard in a real headless Chromium: an app served by uvicorn with curate's
lifespan and router runs a workflow on the test's schema; the page shows the counts change
as items complete, shows the error, and re-queues it with its button. Forms on a page of
another site, posted by the same signed-in browser, are refused and change nothing.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` package (no
browser download). Skipped when either is missing, except under CI (``CI`` set, as
``.ci/run`` does), where a missing browser fails the test. The screenshots go to
``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import DateTime, Integer, String, func, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import curate
from curate import NonRetryableError, ProcessingStatus, Workflow, operations, workflow_mixin
from curate.contrib.fastapi import curate_lifespan, curate_router
from curate.testing import wait_until
from tests.test_fastapi import require_token

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000
FAILING = "fail: <b>not bold</b>"
HANGS = "hangs until cancelled"

# The service waits for `release`, so the page first sees nothing complete; rows whose
# payload is FAILING fail until `fixed` is set (the bug fix before the re-queue).
release = threading.Event()
fixed = threading.Event()


class Base(DeclarativeBase):
    pass


class DashItem(workflow_mixin("dash"), Base):
    __tablename__ = "dash_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payload: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


async def process_single_dash(item_id: Any, session: AsyncSession) -> None:
    await asyncio.to_thread(release.wait, 60)  # set by the test, in the test's thread
    item = await session.get(DashItem, item_id)
    if item is not None and item.payload == HANGS:
        await asyncio.Event().wait()  # until it is cancelled
    if item is not None and item.payload == FAILING and not fixed.is_set():
        raise NonRetryableError(item.payload)


dash = Workflow("dash", model=DashItem, service=process_single_dash, interval_seconds=0.2)


def another_site(request: Request) -> HTMLResponse:
    """A page the test opens as http://localhost:<port>, another site than the dashboard's
    http://127.0.0.1:<port>: two forms posting to the dashboard's endpoints, as an
    attacker's page would (urlencoded, empty; text/plain shaped into JSON)."""
    target = f"http://127.0.0.1:{request.url.port}/curate/workflows/dash"
    return HTMLResponse(f"""<!DOCTYPE html><title>elsewhere</title>
<form method="post" action="{target}/pause"><button>Pause</button></form>
<form method="post" action="{target}/requeue" enctype="text/plain">
<input name='{{"errors": true, "pad": "' value='"}}'><button>Requeue</button></form>""")


async def refuse_forms_from(page: Any, url: str, engine: AsyncEngine) -> None:
    """Each form of `another_site`, posted from ``url``: refused, nothing changed."""
    for button, action in (("Pause", "pause"), ("Requeue", "requeue")):
        await page.goto(url)
        async with page.expect_response(lambda r, a=action: r.url.endswith(f"/{a}")) as sent:
            await page.get_by_role("button", name=button).click()
        response = await sent.value
        assert response.status == 403, await response.text()
        assert (await response.json())["detail"].startswith("cross-origin request refused")
    [status] = (await operations.read_status(engine, [dash])).workflows
    assert (status.paused, status.counts["error"]) == (False, 1)


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    return None


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """``app`` served by uvicorn in a daemon thread on 127.0.0.1, a free port; its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:

        async def up() -> bool:
            if not thread.is_alive():
                raise RuntimeError("the server stopped while starting (see the log above)")
            return server.started

        await wait_until(up, seconds=30, what="the server to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()  # never leave a run waiting: shutdown waits for running items
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        sock.close()


async def test_dashboard_in_chromium(settings: curate.CurateSettings, engine: AsyncEngine) -> None:
    missing = browser_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run under CI: {missing}")
        pytest.skip(missing)
    from playwright.async_api import async_playwright, expect

    release.clear()
    fixed.clear()
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            insert(DashItem),
            [
                {"id": 1, "payload": "ok", "dash_status": ProcessingStatus.Queued},
                {"id": 2, "payload": "ok", "dash_status": ProcessingStatus.Queued},
                {"id": 3, "payload": FAILING, "dash_status": ProcessingStatus.Queued},
            ],
        )

    app = FastAPI(lifespan=curate_lifespan([dash], settings=settings, grace_seconds=5))
    router = curate_router(
        [dash], read_auth=require_token, requeue_auth=require_token, dashboard_refresh_seconds=0.2
    )
    app.include_router(router, prefix="/curate")
    app.get("/elsewhere", response_class=HTMLResponse)(another_site)
    ARTIFACTS.mkdir(exist_ok=True)

    async with served(app) as url, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # The app's auth wants X-Token; the browser sends it on every request, as it
            # would a session cookie: also on the forms another site's page posts.
            context = await browser.new_context(
                extra_http_headers={"X-Token": "secret"}, viewport={"width": 1000, "height": 700}
            )
            page = await context.new_page()
            await page.goto(f"{url}/curate/dashboard")
            await expect(page).to_have_title("curate — workflows")
            section = page.locator("#workflow-dash")
            complete = section.locator('[data-count="complete"]')
            error = section.locator('[data-count="error"]')
            await expect(complete).to_have_text("0")
            await expect(error).to_have_text("0")

            # The items complete (one fails); the page refreshes itself.
            release.set()
            await expect(complete).to_have_text("2", timeout=WAIT_MS)
            await expect(error).to_have_text("1", timeout=WAIT_MS)
            # The error message is shown as text, not as markup.
            group = section.locator("tr[data-error-group]")
            await expect(group).to_have_count(1)
            await expect(group.locator("code").first).to_have_text(f"NonRetryableError: {FAILING}")
            await expect(group.locator("b")).to_have_count(0)
            button = section.get_by_role("button", name="Re-queue the 1 row in Error in dash")
            await expect(button).to_be_enabled()
            await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

            # Another site's forms, posted by this signed-in browser: refused.
            elsewhere = url.replace("127.0.0.1", "localhost") + "/elsewhere"
            other_tab = await context.new_page()
            await refuse_forms_from(other_tab, elsewhere, engine)
            await other_tab.close()
            await page.bring_to_front()  # a background tab gets no animation frames
            await expect(section.locator("[data-paused]")).to_have_count(0)

            # Fix the bug, press requeue: the row goes back to Queued and completes.
            fixed.set()
            await button.click()
            await expect(page.locator("#curate-message")).to_have_text(
                "Re-queued 1 row in dash.", timeout=WAIT_MS
            )
            await expect(complete).to_have_text("3", timeout=WAIT_MS)
            await expect(error).to_have_text("0", timeout=WAIT_MS)
            await expect(section.locator('[data-errors="none"]')).to_have_text("No errors.")
            await page.screenshot(path=ARTIFACTS / "dashboard-after-requeue.png", full_page=True)
        finally:
            await browser.close()


async def test_items_item_page_and_charts_in_chromium(
    settings: curate.CurateSettings, engine: AsyncEngine
) -> None:
    """Overview, an error group's link, the filtered list, the item's page, its requeue
    button; the charts drawn from what the worker flushed."""
    missing = browser_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run under CI: {missing}")
        pytest.skip(missing)
    from playwright.async_api import async_playwright, expect

    release.set()
    fixed.clear()
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            insert(DashItem),
            [
                {"id": n, "payload": FAILING if n == 4 else "ok", "dash_status": "Queued"}
                for n in range(1, 5)
            ],
        )
    quick = settings.model_copy(update={"stats_interval_seconds": 0.3, "attempt_history": "all"})
    app = FastAPI(lifespan=curate_lifespan([dash], settings=quick, grace_seconds=5))
    router = curate_router(
        [dash], read_auth=require_token, requeue_auth=require_token, dashboard_refresh_seconds=0.2
    )
    app.include_router(router, prefix="/curate")
    ARTIFACTS.mkdir(exist_ok=True)

    async with served(app) as url, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                extra_http_headers={"X-Token": "secret"}, viewport={"width": 1100, "height": 800}
            )
            page = await context.new_page()
            await page.goto(f"{url}/curate/dashboard")
            section = page.locator("#workflow-dash")
            await expect(section.locator('[data-count="complete"]')).to_have_text(
                "3", timeout=WAIT_MS
            )
            # The charts: the worker's flush wrote 3 completions and 1 failure; each chart
            # says so in its accessible description.
            completed = section.get_by_role("img", name="dash: Completed per 5 min, last 6 h")
            await expect(completed.locator('rect[data-value="3"]')).to_have_count(
                1, timeout=WAIT_MS
            )
            failed = section.locator('[data-chart="failed"] desc')
            await expect(failed).to_contain_text("1 in total over 72 buckets")
            await expect(section.locator('[data-chart="queued"] circle').first).to_be_attached()
            await page.screenshot(path=ARTIFACTS / "dashboard-charts.png", full_page=True)

            # The error group's message links to its rows.
            await section.locator("tr[data-error-group] a").click()
            await expect(page).to_have_url(re.compile(r"/dashboard/workflows/dash\?.*group="))
            await expect(page.locator('select[name="status"]')).to_have_value("error")
            rows = page.locator("tr[data-item]")
            await expect(rows).to_have_count(1)
            await expect(rows.locator("code")).to_have_text(f"NonRetryableError: {FAILING}")
            await page.screenshot(path=ARTIFACTS / "dashboard-items.png", full_page=True)

            # The item's page: its status columns, its attempts (the traceback behind a
            # disclosure), and its own requeue button.
            await rows.get_by_role("link", name="4").click()
            await expect(page.locator("h1")).to_have_text("dash — item 4")
            status = page.locator('[data-field="status"]')
            await expect(status).to_have_text("Error")
            history = page.locator("#curate-history tbody tr")
            await expect(history).to_have_count(1)
            await expect(history.first).to_have_attribute("data-outcome", "failed")
            await history.first.locator("summary").click()
            await expect(history.first.locator("pre")).to_contain_text("process_single_dash")
            await page.screenshot(path=ARTIFACTS / "dashboard-item.png", full_page=True)
            fixed.set()
            await page.get_by_role("button", name="Re-queue this item").click()
            await expect(page.locator("#curate-message")).to_have_text(
                "Re-queued 1 row in dash.", timeout=WAIT_MS
            )
            await expect(status).to_have_text("Complete", timeout=WAIT_MS)
            await expect(page.locator('[data-field="error"]')).to_have_text("—")
            await expect(history.first).to_have_attribute("data-outcome", "completed")
            await expect(history).to_have_count(2)
            await page.screenshot(path=ARTIFACTS / "dashboard-item-requeued.png", full_page=True)

            # Item 5 runs until cancelled: its Cancel button stops it where it runs.
            async with engine.begin() as conn:
                await conn.execute(
                    insert(DashItem).values(id=5, payload=HANGS, dash_status="Queued")
                )
            await page.goto(f"{url}/curate/dashboard/workflows/dash/items/5")
            await expect(status).to_have_text("Processing", timeout=WAIT_MS)
            asked: list[str] = []

            async def accept(dialog: Any) -> None:
                asked.append(dialog.message)
                await dialog.accept()

            page.once("dialog", accept)
            await page.get_by_role("button", name="Cancel this item").click()
            await expect(page.locator("#curate-message")).to_have_text(
                "Cancelled 0 rows in dash; asked the workers of 1 row running.",
                timeout=WAIT_MS,
            )
            await expect(status).to_have_text("Error", timeout=WAIT_MS)
            await expect(page.locator('[data-field="error"]')).to_have_text("Cancelled")
            await expect(history.first).to_have_attribute("data-outcome", "cancelled")
            assert asked == ["Cancel item 5 of dash?"]
            await page.screenshot(path=ARTIFACTS / "dashboard-item-cancelled.png", full_page=True)

            # Back on the overview: four completions in the charts now.
            await page.goto(f"{url}/curate/dashboard")
            await expect(completed.locator('rect[data-value="4"]')).to_have_count(
                1, timeout=WAIT_MS
            )
        finally:
            await browser.close()
