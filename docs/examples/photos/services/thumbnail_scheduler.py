"""The thumbnail workflow's scheduler module: thin, it delegates to curate."""

from curate import Workflow
from curate.scheduling import add_workflow_job

from photos.models import Photo
from photos.services.thumbnail_service import process_single_thumbnail

thumbnail_workflow = Workflow(
    "thumbnail",
    model=Photo,
    service=process_single_thumbnail,
    batch_size=20,
    interval_seconds=5,
    concurrency=4,
)


async def process_pending_thumbnails() -> None:
    """Job function: size the thumbnails of the photos queued for it."""
    await thumbnail_workflow.run()


def setup_thumbnail_scheduler() -> None:
    """Adds the job `process_pending_thumbnails` to the shared scheduler."""
    add_workflow_job(thumbnail_workflow, process_pending_thumbnails)
