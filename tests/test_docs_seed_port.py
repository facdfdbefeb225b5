"""Executes docs/examples/seed_port: an app written to the seed convention, after the port.

Its modules keep the seed codebase's call shape (a service object per call and its bound
method, ``asc(Model.updated_at)``, its own status names, services that set their own
status and return a bool, setup functions calling ``scheduler.add_job`` on a shared
instance, a lifespan that starts and plainly shuts it down); only imports changed.
"""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate.engine.hooks import ItemEvent
from curate.testing import wait_until
from tests.test_docs import EXAMPLES

if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

SITEMAP = (
    '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    "<url><loc>https://a.example/contact</loc></url>"
    "<url><loc>https://a.example/about</loc></url>"
    "<url><loc>https://a.example/broken</loc></url>"
    "</urlset>"
)
EMPTY_SITEMAP = '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"></urlset>'


def example(name: str) -> Any:
    return importlib.import_module(f"seed_port.{name}")


async def queue_sitemap_files(engine: AsyncEngine) -> list[uuid.UUID]:
    """Three files, queued; returned in the order of their ``updated_at``, which is not
    the order of their ids."""
    models = example("models")
    ids = sorted(uuid.uuid4() for _ in range(3))
    ordered = [ids[1], ids[2], ids[0]]
    contents = [SITEMAP, "<urlset><url>", EMPTY_SITEMAP]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
        await conn.execute(
            insert(models.SitemapFile),
            [
                {
                    "id": item_id,
                    "content": content,
                    "sitemap_import_status": models.SitemapImportProcessStatus.Queued,
                    "updated_at": base + timedelta(minutes=n),
                }
                for n, (item_id, content) in enumerate(zip(ordered, contents, strict=True))
            ],
        )
    return ordered


async def outcomes(engine: AsyncEngine) -> tuple[list[Any], dict[str, tuple[str, Any, Any]]]:
    """The files' (status, error) by id order, and each page's (status, error, email)."""
    models = example("models")
    async with engine.connect() as conn:
        files = await conn.execute(
            select(models.SitemapFile.id, models.SitemapFile.sitemap_import_status)
        )
        pages = await conn.execute(select(models.Page.__table__))
        return (
            [(row.id, row.sitemap_import_status) for row in files],
            {
                row.url: (row.page_curation_status, row.page_curation_error, row.contact_email)
                for row in pages
            },
        )


@asynccontextmanager
async def started_items(runtime: curate.Runtime) -> AsyncIterator[list[tuple[str, Any]]]:
    """(workflow, item id) of every item, in the order their service was called."""
    started: list[tuple[str, Any]] = []

    @asynccontextmanager
    async def record(event: ItemEvent) -> AsyncIterator[None]:
        started.append((event.workflow, event.item_id))
        yield

    runtime.add_item_hook(record)
    yield started


async def test_the_ported_app(
    runtime: curate.Runtime, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    models, main, settings = example("models"), example("main"), example("settings").settings
    monkeypatch.setattr(settings, "SITEMAP_IMPORT_SCHEDULER_INTERVAL_MINUTES", 0.002)
    monkeypatch.setattr(settings, "PAGE_CURATION_SCHEDULER_INTERVAL_MINUTES", 0.002)
    monkeypatch.setattr(settings, "PAGE_CURATION_SCHEDULER_BATCH_SIZE", 2)
    files = await queue_sitemap_files(engine)
    file_status, page_status = models.SitemapImportProcessStatus, models.PageCurationStatus

    async def all_final() -> bool:
        _, pages = await outcomes(engine)
        return len(pages) == 3 and all(
            status not in (page_status.Queued, page_status.Processing)
            for status, _, _ in pages.values()
        )

    async with started_items(runtime) as started, main.app.router.lifespan_context(main.app):
        await wait_until(all_final, seconds=30, what="every page curated")

    file_rows, pages = await outcomes(engine)
    assert sorted(status.name for _, status in file_rows) == ["Complete", "Complete", "Error"]
    assert pages == {
        "https://a.example/contact": (page_status.Completed, None, "hello@example.com"),
        "https://a.example/about": (page_status.Error, "no contact found", None),
        "https://a.example/broken": (
            page_status.Error,
            "ConnectionError: cannot fetch https://a.example/broken",
            None,
        ),
    }
    # asc(SitemapFile.updated_at): the files started in that order, not by id.
    assert [i for name, i in started if name.startswith("sitemap_files")] == files
    assert dict(file_rows)[files[1]] is file_status.Error  # the malformed one, handled


async def test_the_next_step_workflow(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    models, module = example("models"), example("page_curation_workflow")
    page_status = models.PageCurationStatus
    await queue_sitemap_files(engine)
    await example("sitemap_import_scheduler").process_pending_sitemap_imports()

    await module.process_page_curation_queue()

    _, pages = await outcomes(engine)
    assert {url: status for url, (status, _, _) in pages.items()} == {
        "https://a.example/contact": page_status.Completed,
        "https://a.example/about": page_status.Error,
        "https://a.example/broken": page_status.Error,
    }
