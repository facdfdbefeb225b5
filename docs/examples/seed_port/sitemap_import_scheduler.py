"""The seed's scheduler module after the port: only the run_job_loop import changed."""

import logging

from curate import run_job_loop  # was: from src.common.curation_sdk.scheduler_loop import …
from sqlalchemy import asc

from seed_port.models import SitemapFile, SitemapImportProcessStatus
from seed_port.scheduler_instance import scheduler
from seed_port.settings import settings
from seed_port.sitemap_import_service import SitemapImportService

logger = logging.getLogger(__name__)


async def process_pending_sitemap_imports() -> None:
    """Job function to process sitemap files queued for URL extraction/import."""
    service = SitemapImportService()
    await run_job_loop(
        model=SitemapFile,
        status_enum=SitemapImportProcessStatus,
        queued_status=SitemapImportProcessStatus.Queued,
        processing_status=SitemapImportProcessStatus.Processing,
        completed_status=SitemapImportProcessStatus.Complete,
        failed_status=SitemapImportProcessStatus.Error,
        processing_function=service.process_single_sitemap_file,
        batch_size=settings.SITEMAP_IMPORT_SCHEDULER_BATCH_SIZE,
        order_by_column=asc(SitemapFile.updated_at),
        status_field_name="sitemap_import_status",
        error_field_name="sitemap_import_error",
    )


def setup_sitemap_import_scheduler() -> None:
    """Adds the sitemap import processing job to the shared scheduler."""
    job_id = "process_sitemap_imports"
    scheduler.add_job(
        process_pending_sitemap_imports,
        trigger="interval",
        minutes=settings.SITEMAP_IMPORT_SCHEDULER_INTERVAL_MINUTES,
        id=job_id,
        name="Process Pending Sitemap Imports",
        replace_existing=True,
        max_instances=settings.SITEMAP_IMPORT_SCHEDULER_MAX_INSTANCES,
        misfire_grace_time=1800,  # 30 minutes
    )
    logger.info("Added/Updated job '%s' on shared scheduler.", job_id)
