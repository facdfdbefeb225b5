"""Sitemap import: read the page URLs of each selected sitemap file."""

from curate import DualStatus, Workflow, scheduling
from curate.demo.models import CurationStatus, SitemapFile
from curate.demo.services import INTERVAL_SECONDS, RETRY, TIMEOUT_SECONDS
from curate.demo.services.sitemap_import_service import process_single_sitemap_import

sitemap_import = Workflow(
    "sitemap_import",
    model=SitemapFile,
    service=process_single_sitemap_import,
    interval_seconds=INTERVAL_SECONDS,
    batch_size=10,
    concurrency=4,
    timeout_seconds=TIMEOUT_SECONDS,
    retry=RETRY,
)

sitemap_file_selection = DualStatus(
    SitemapFile.curation_status, {CurationStatus.Selected: sitemap_import}
)
"""Selecting sitemap files queues them for sitemap import, in the same transaction."""


async def process_pending_sitemap_imports() -> None:
    """Job function: process the sitemap files queued for import."""
    await sitemap_import.run()


def setup_sitemap_import_scheduler() -> None:
    """Adds the sitemap import job to the shared scheduler."""
    scheduling.add_workflow_job(sitemap_import, process_pending_sitemap_imports)
