"""The seed's page curation scheduler after the port: only the run_job_loop import changed."""

import logging

from curate import run_job_loop  # was: from src.common.curation_sdk.scheduler_loop import …
from sqlalchemy import asc

from seed_port.models import Page, PageCurationStatus
from seed_port.page_curation_service import PageCurationService
from seed_port.scheduler_instance import scheduler
from seed_port.settings import settings

logger = logging.getLogger(__name__)


async def process_page_curation_queue() -> None:
    """Processes pages marked as 'Queued' for curation using the SDK job loop."""
    service = PageCurationService()
    await run_job_loop(
        model=Page,
        status_enum=PageCurationStatus,
        queued_status=PageCurationStatus.Queued,
        processing_status=PageCurationStatus.Processing,
        completed_status=PageCurationStatus.Completed,
        failed_status=PageCurationStatus.Error,
        processing_function=service.process_single_page_for_curation,
        batch_size=settings.PAGE_CURATION_SCHEDULER_BATCH_SIZE,
        order_by_column=asc(Page.updated_at),
        status_field_name="page_curation_status",
        error_field_name="page_curation_error",
    )


def setup_page_curation_scheduler() -> None:
    """Adds the page curation job to the main scheduler."""
    scheduler.add_job(
        process_page_curation_queue,
        "interval",
        minutes=settings.PAGE_CURATION_SCHEDULER_INTERVAL_MINUTES,
        id="v2_page_curation_processor",
        replace_existing=True,
        max_instances=settings.PAGE_CURATION_SCHEDULER_MAX_INSTANCES,
    )
    logger.info("Page curation scheduler job added.")
