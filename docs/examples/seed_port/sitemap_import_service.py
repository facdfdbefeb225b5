"""A service shaped like the seed's: a class, a method per item, its own commits and status."""

import logging
import uuid
from xml.etree import ElementTree

from sqlalchemy.ext.asyncio import AsyncSession

from seed_port.models import Page, PageCurationStatus, SitemapFile, SitemapImportProcessStatus

logger = logging.getLogger(__name__)

NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


class SitemapImportService:
    async def process_single_sitemap_file(
        self, sitemap_file_id: uuid.UUID, session: AsyncSession
    ) -> None:
        """Adds a page, queued for curation, per <loc>; sets the file's final status."""
        sitemap_file = await session.get(SitemapFile, sitemap_file_id)
        if sitemap_file is None:
            logger.error("SitemapFile %s not found", sitemap_file_id)
            return
        try:
            root = ElementTree.fromstring(sitemap_file.content)
        except ElementTree.ParseError as e:  # handled: recorded, not raised
            sitemap_file.sitemap_import_status = SitemapImportProcessStatus.Error
            sitemap_file.sitemap_import_error = f"Malformed sitemap: {e}"[:1024]
            await session.commit()
            return
        for loc in root.iter(f"{NS}loc"):
            session.add(
                Page(
                    sitemap_file_id=sitemap_file.id,
                    url=loc.text or "",
                    page_curation_status=PageCurationStatus.Queued,
                )
            )
        sitemap_file.sitemap_import_status = SitemapImportProcessStatus.Complete
        await session.commit()
