"""Jobs not tied to a row: a nightly purge and a count every five minutes, once per time."""

from datetime import datetime, timedelta

import curate
from curate.scheduling import add_periodic_job
from loguru import logger
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from photos.models import CurationStatus, Photo

KEEP_REJECTED = timedelta(days=30)


@curate.periodic(cron="0 3 * * *")  # every day at 03:00 UTC
async def purge_rejected_photos(scheduled_at: datetime, session: AsyncSession) -> None:
    """Delete the photos rejected more than 30 days before this run's time; curate commits
    the deletes with the run's outcome (or rolls them back if the run lost its lease)."""
    await session.execute(
        delete(Photo).where(
            Photo.curation_status == CurationStatus.Rejected,
            Photo.updated_at < scheduled_at - KEEP_REJECTED,
        )
    )


@curate.periodic(every_seconds=300)  # at :00, :05, :10, ... on every replica
async def log_photo_counts(scheduled_at: datetime) -> None:
    """Log how many photos are in each curation status."""
    sessionmaker = await curate.get_runtime().database.sessionmaker()
    async with sessionmaker() as session:
        counts = await session.execute(
            select(Photo.curation_status, func.count()).group_by(Photo.curation_status)
        )
    logger.info("photos at {}: {}", scheduled_at, {str(status): n for status, n in counts})


def setup_periodic_jobs() -> None:
    """Adds both jobs to the shared scheduler; call it beside the workflows' setups."""
    add_periodic_job(purge_rejected_photos)
    add_periodic_job(log_photo_counts)
