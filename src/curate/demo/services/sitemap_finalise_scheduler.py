"""Sitemap finalise: a fan-in. A sitemap file is queued when it is imported and every page
it selected for curation is done (Complete or Error), by the triggers of the demo's
migration 0006 (`curate.migrations.create_fan_in`)."""

from curate import Workflow, scheduling
from curate.demo.models import SitemapFile
from curate.demo.services import INTERVAL_SECONDS, RETRY, TIMEOUT_SECONDS
from curate.demo.services.page_curation_scheduler import page_curation
from curate.demo.services.sitemap_finalise_service import process_single_sitemap_finalise
from curate.demo.services.sitemap_import_scheduler import sitemap_import
from curate.fan_in import Children

sitemap_finalise = Workflow(
    "sitemap_finalise",
    model=SitemapFile,
    service=process_single_sitemap_finalise,
    interval_seconds=INTERVAL_SECONDS,
    timeout_seconds=TIMEOUT_SECONDS,
    retry=RETRY,
    waits_for=Children(page_curation, parent_key="sitemap_file_id", after=sitemap_import),
)


async def process_pending_sitemap_finalises() -> None:
    """Job function: finalise the sitemap files whose pages are all done."""
    await sitemap_finalise.run()


def setup_sitemap_finalise_scheduler() -> None:
    """Adds the sitemap finalise job to the shared scheduler."""
    scheduling.add_workflow_job(sitemap_finalise, process_pending_sitemap_finalises)
