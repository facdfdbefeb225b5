"""The demo pipeline as a whole: its workflows, its data, starting and stopping it.

Shared by the `curate demo` runner and the FastAPI app, which differ only in what they do
while the pipeline runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert

import curate
from curate import CurateSettings, ProcessingStatus, Runtime, Workflow, scheduling
from curate.demo import schema
from curate.demo.context import DemoContext, set_context
from curate.demo.models import CurationStatus, Domain
from curate.demo.services.page_curation_scheduler import (
    page_curation,
    setup_page_curation_scheduler,
)
from curate.demo.services.sitemap_discovery_scheduler import (
    domain_selection,
    setup_sitemap_discovery_scheduler,
    sitemap_discovery,
)
from curate.demo.services.sitemap_finalise_scheduler import (
    setup_sitemap_finalise_scheduler,
    sitemap_finalise,
)
from curate.demo.services.sitemap_import_scheduler import (
    setup_sitemap_import_scheduler,
    sitemap_import,
)
from curate.demo.site import DemoSite, serve_site
from curate.logs import logger

WORKFLOWS: tuple[Workflow, ...] = (
    sitemap_discovery,
    sitemap_import,
    page_curation,
    sitemap_finalise,
)
"""In pipeline order."""

StatusCounts = dict[str, dict[str, int]]
"""Workflow name → processing status → rows."""


async def prepare_database(runtime: Runtime, site: DemoSite, base_url: str) -> None:
    """Migrate, empty the demo's tables and seed the site's domains, selected and queued.

    Every run starts from a fresh seed, so running the demo again on the same database
    gives the same outcome. The rows carry absolute URLs of the site at ``base_url``.
    """
    await schema.upgrade(runtime)
    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        # Fail rather than wait forever behind a session that reads these tables.
        await session.execute(text("SET LOCAL lock_timeout = '10s'"))
        tables = ", ".join(dict.fromkeys(w.binding.table.name for w in WORKFLOWS))
        await session.execute(text(f"TRUNCATE {tables}"))
        ids = await session.scalars(
            insert(Domain).returning(Domain.id),
            [{"name": name, "url": url} for name, url in site.domain_urls(base_url).items()],
        )
        await domain_selection.set(session, ids.all(), CurationStatus.Selected)


@asynccontextmanager
async def running_demo(settings: CurateSettings, site: DemoSite) -> AsyncIterator[Runtime]:
    """Configure curate, prepare the database, serve ``site``, run the four workflows.

    On exit the scheduler shuts down gracefully (running items finish) before the site,
    the HTTP client and the database connections go away.
    """
    runtime = curate.configure(settings)
    for workflow in WORKFLOWS:  # bad <NAME>_SCHEDULER_* values stop us before any write
        runtime.workflow_settings(workflow)
    try:
        with serve_site(site) as base_url:
            await prepare_database(runtime, site, base_url)
            async with httpx.AsyncClient(timeout=10.0) as http:
                set_context(DemoContext(http=http))
                try:
                    setup_sitemap_discovery_scheduler()
                    setup_sitemap_import_scheduler()
                    setup_page_curation_scheduler()
                    setup_sitemap_finalise_scheduler()
                    scheduling.start_scheduler()
                    logger.info("demo site serving at {}; pipeline running", base_url)
                    yield runtime
                finally:
                    await scheduling.shutdown_scheduler()
                    set_context(None)
    finally:
        await runtime.close()


async def status_counts(runtime: Runtime) -> StatusCounts:
    """Rows per processing status of every workflow (rows never queued are left out)."""
    counts: StatusCounts = {}
    async with (await runtime.database.engine()).connect() as connection:
        for workflow in WORKFLOWS:
            status = workflow.binding.status
            rows = await connection.execute(
                select(status, func.count()).where(status.is_not(None)).group_by(status)
            )
            counts[workflow.name] = {str(value): n for value, n in rows}
    return counts


def is_drained(counts: StatusCounts) -> bool:
    """Nothing Queued or Processing in any workflow."""
    busy = (ProcessingStatus.Queued.value, ProcessingStatus.Processing.value)
    return not any(per_status.get(s) for per_status in counts.values() for s in busy)
