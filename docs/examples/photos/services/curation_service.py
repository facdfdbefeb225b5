"""The dual-status pattern: the curation status people set queues the workflow."""

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from photos.models import CurationStatus, Photo
from photos.services.thumbnail_scheduler import thumbnail_workflow


async def set_curation_status(
    session: AsyncSession, photo_ids: Sequence[int], status: CurationStatus
) -> None:
    """Set the curation status; Selected photos are queued for a thumbnail.

    Runs in the caller's transaction: the status and the queueing commit together.
    """
    await session.execute(
        update(Photo).where(Photo.id.in_(photo_ids)).values(curation_status=status)
    )
    if status is CurationStatus.Selected:
        await thumbnail_workflow.queue(session, photo_ids)
