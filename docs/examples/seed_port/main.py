"""The app's lifespan, unchanged by the port: start the scheduler, add the jobs, stop it."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from seed_port.page_curation_scheduler import setup_page_curation_scheduler
from seed_port.scheduler_instance import shutdown_scheduler, start_scheduler
from seed_port.sitemap_import_scheduler import setup_sitemap_import_scheduler

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    start_scheduler()
    try:
        setup_sitemap_import_scheduler()
    except Exception as e:
        logger.error(f"Failed to setup Sitemap Import scheduler job: {e}", exc_info=True)
    try:
        setup_page_curation_scheduler()
    except Exception as e:
        logger.error(f"Failed to setup Page Curation scheduler job: {e}", exc_info=True)
    yield
    shutdown_scheduler()


app = FastAPI(lifespan=lifespan)
