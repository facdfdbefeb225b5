"""After the port: the same seed table as a `Workflow`, for concurrency, timeout and settings."""

from curate import Workflow

from seed_port.models import SitemapFile, SitemapImportProcessStatus
from seed_port.sitemap_import_service import process_single_sitemap_file

sitemap_import_workflow = Workflow(
    "sitemap_import",  # columns sitemap_import_status and sitemap_import_error
    model=SitemapFile,
    service=process_single_sitemap_file,
    status_enum=SitemapImportProcessStatus,  # members Queued, Processing, Complete, Error
    concurrency=4,
)


async def process_pending_sitemap_imports() -> None:
    """Job function to process sitemap files queued for URL extraction/import."""
    await sitemap_import_workflow.run()
