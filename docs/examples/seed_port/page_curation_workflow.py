"""The next step after the port: the same table and service as a `Workflow`."""

from curate import Statuses, Workflow
from sqlalchemy import asc

from seed_port.models import Page, PageCurationStatus
from seed_port.page_curation_service import PageCurationService

page_curation_workflow = Workflow(
    "page_curation",  # columns page_curation_status and page_curation_error
    model=Page,
    service=PageCurationService().process_single_page_for_curation,
    statuses=Statuses(
        queued=PageCurationStatus.Queued,
        processing=PageCurationStatus.Processing,
        complete=PageCurationStatus.Completed,
        failed=PageCurationStatus.Error,
    ),
    order_by=asc(Page.updated_at),
    batch_size=50,
    concurrency=4,  # four pages fetched at once
    timeout_seconds=120,
)


async def process_page_curation_queue() -> None:
    """Job function: one run drains the queue, four items at a time."""
    await page_curation_workflow.run()
