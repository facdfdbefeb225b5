"""Sitemap finalise for one sitemap file: once all its pages are curated, record how many
made it and how many failed."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from curate import ProcessingStatus
from curate.demo.models import Page, SitemapFile


async def process_single_sitemap_finalise(item_id: uuid.UUID, session: AsyncSession) -> None:
    """Count the file's pages by their page curation outcome, onto the file's row.

    The fan-in queues the file only when none of its selected pages is still queued or
    running, so the counts are final.
    """
    sitemap = await session.get_one(SitemapFile, item_id)
    status = Page.page_curation_status
    counted = await session.execute(
        select(status, func.count())
        .where(Page.sitemap_file_id == item_id, status.is_not(None))
        .group_by(status)
    )
    by_status = {status: rows for status, rows in counted}
    sitemap.pages_complete = by_status.get(ProcessingStatus.Complete, 0)
    sitemap.pages_failed = by_status.get(ProcessingStatus.Error, 0)
