"""The seed's scheduler module after the port: `run_job_loop` now comes from curate."""

from curate import run_job_loop  # was: from src.common.curation_sdk.scheduler_loop import ...
from curate.scheduling import add_interval_job

from seed_port.models import SitemapFile, SitemapImportProcessStatus
from seed_port.sitemap_import_service import process_single_sitemap_file

# The app's own settings, as before the port.
SITEMAP_IMPORT_SCHEDULER_INTERVAL_SECONDS = 20
SITEMAP_IMPORT_SCHEDULER_BATCH_SIZE = 10
SITEMAP_IMPORT_SCHEDULER_MAX_INSTANCES = 1


async def process_pending_sitemap_imports() -> None:
    """Job function to process sitemap files queued for URL extraction/import."""
    await run_job_loop(
        model=SitemapFile,
        status_enum=SitemapImportProcessStatus,
        queued_status=SitemapImportProcessStatus.Queued,
        processing_status=SitemapImportProcessStatus.Processing,
        completed_status=SitemapImportProcessStatus.Complete,
        failed_status=SitemapImportProcessStatus.Error,
        processing_function=process_single_sitemap_file,
        batch_size=SITEMAP_IMPORT_SCHEDULER_BATCH_SIZE,
        status_field_name="sitemap_import_status",
        error_field_name="sitemap_import_error",
    )


def setup_sitemap_import_scheduler() -> None:
    """Adds the sitemap import processing job to the shared scheduler (curate's)."""
    add_interval_job(
        process_pending_sitemap_imports,
        job_id="process_pending_sitemap_imports",
        interval_seconds=SITEMAP_IMPORT_SCHEDULER_INTERVAL_SECONDS,
        max_instances=SITEMAP_IMPORT_SCHEDULER_MAX_INSTANCES,
    )
