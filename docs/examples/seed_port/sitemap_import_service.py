"""Three ways a seed-style service may handle the session it is given; all work."""

import uuid
from xml.etree import ElementTree

from sqlalchemy.ext.asyncio import AsyncSession

from seed_port.models import Page, SitemapFile, SitemapImportProcessStatus

NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def page_urls(content: str) -> list[str]:
    """The <loc> of every <url>; malformed XML raises ElementTree.ParseError."""
    root = ElementTree.fromstring(content)
    return [loc.text or "" for loc in root.iter(f"{NS}loc")]


async def process_single_sitemap_file(sitemap_file_id: uuid.UUID, session: AsyncSession) -> None:
    """1. Leave the commit to curate: the pages and Complete commit together."""
    sitemap_file = await session.get(SitemapFile, sitemap_file_id)
    assert sitemap_file is not None
    for url in page_urls(sitemap_file.content):
        session.add(Page(sitemap_file_id=sitemap_file.id, url=url))


async def process_single_sitemap_file_in_transaction(
    sitemap_file_id: uuid.UUID, session: AsyncSession
) -> None:
    """2. Open its own transaction: the pages commit first, Complete just after."""
    async with session.begin():
        sitemap_file = await session.get(SitemapFile, sitemap_file_id)
        assert sitemap_file is not None
        for url in page_urls(sitemap_file.content):
            session.add(Page(sitemap_file_id=sitemap_file.id, url=url))


async def process_single_sitemap_file_committing(
    sitemap_file_id: uuid.UUID, session: AsyncSession
) -> None:
    """3. Commit itself, here setting a final status of its own, which curate keeps."""
    sitemap_file = await session.get(SitemapFile, sitemap_file_id)
    assert sitemap_file is not None
    urls = page_urls(sitemap_file.content)
    if not urls:
        sitemap_file.sitemap_import_status = SitemapImportProcessStatus.Error
        sitemap_file.sitemap_import_error = "the sitemap lists no pages"
    for url in urls:
        session.add(Page(sitemap_file_id=sitemap_file.id, url=url))
    await session.commit()
