"""Page curation: record the title and length of each selected page."""

from curate import DualStatus, Workflow, scheduling
from curate.demo.models import CurationStatus, Page
from curate.demo.services import INTERVAL_SECONDS, RETRY, TIMEOUT_SECONDS
from curate.demo.services.page_curation_service import process_single_page_curation

page_curation = Workflow(
    "page_curation",
    model=Page,
    service=process_single_page_curation,
    interval_seconds=INTERVAL_SECONDS,
    batch_size=25,
    concurrency=10,
    timeout_seconds=TIMEOUT_SECONDS,
    retry=RETRY,
    lock_key="domain_id",  # polite crawling: one request at a time per site, in order
)

page_selection = DualStatus(Page.curation_status, {CurationStatus.Selected: page_curation})
"""Selecting pages queues them for page curation, in the same transaction."""


async def process_pending_page_curations() -> None:
    """Job function: process the pages queued for curation."""
    await page_curation.run()


def setup_page_curation_scheduler() -> None:
    """Adds the page curation job to the shared scheduler."""
    scheduling.add_workflow_job(page_curation, process_pending_page_curations)
