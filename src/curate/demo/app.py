"""The demo pipeline inside a FastAPI app: how to embed curate in a web service.

    uvicorn curate.demo.app:app

The lifespan configures curate, prepares the demo's tables (fresh seed), serves the
generated site, registers the three workflows and starts the shared scheduler; on
shutdown it lets running items finish. ``GET /status`` shows the pipeline's progress.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

import curate
from curate import CurateSettings, ProcessingStatus
from curate.demo.models import Page
from curate.demo.pipeline import StatusCounts, running_demo, status_counts
from curate.demo.site import DEFAULT_DOMAINS, DemoSite


class CuratedPage(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    url: str
    title: str | None
    word_count: int | None


def create_app(
    settings: CurateSettings | None = None, *, domains: int = DEFAULT_DOMAINS
) -> FastAPI:
    """The demo app. Without ``settings`` it is the edge: it reads the environment and
    configures logging at start-up; with them, the caller has done both."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app_settings = settings
        if app_settings is None:
            app_settings = CurateSettings()
            curate.configure_logging(app_settings.log_level)
        async with running_demo(app_settings, DemoSite(domains=domains)):
            yield

    app = FastAPI(title="curate demo", lifespan=lifespan)

    @app.get("/status")
    async def status() -> StatusCounts:
        """Rows per processing status of each workflow."""
        return await status_counts(curate.get_runtime())

    @app.get("/pages")
    async def pages(limit: int = Query(20, ge=1, le=500)) -> list[CuratedPage]:
        """The pages curated most recently."""
        sessionmaker = await curate.get_runtime().database.sessionmaker()
        async with sessionmaker() as session:
            rows = await session.scalars(
                select(Page)
                .where(Page.page_curation_status == ProcessingStatus.Complete)
                .order_by(Page.updated_at.desc())
                .limit(limit)
            )
            return [CuratedPage.model_validate(page) for page in rows]

    return app


app = create_app()
