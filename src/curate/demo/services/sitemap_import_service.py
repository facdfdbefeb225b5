"""Sitemap import for one sitemap file: parse its XML, create pages, queue the articles."""

from __future__ import annotations

import uuid
from xml.etree import ElementTree

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from curate.demo.context import get_context
from curate.demo.models import CurationStatus, Page, SitemapFile
from curate.demo.services.page_curation_scheduler import page_selection
from curate.demo.site import SITEMAP_NAMESPACE, TAG_SEGMENT
from curate.errors import NonRetryableError


async def process_single_sitemap_import(item_id: uuid.UUID, session: AsyncSession) -> None:
    """Create a page for each ``<loc>`` of the sitemap and queue the ones worth curating.

    The selection rule stands in for a person: articles are selected (and so queued for
    curation); tag pages are listings without content of their own and stay New, where
    someone may still select them. A file that is not well-formed XML fails for good:
    fetching it again gives the same bytes.
    """
    sitemap = await session.get_one(SitemapFile, item_id)
    urls = page_urls(await get_context().fetch_text(sitemap.url), sitemap.url)
    sitemap.url_count = len(urls)
    rows = [{"domain_id": sitemap.domain_id, "sitemap_file_id": sitemap.id, "url": u} for u in urls]
    if not rows:
        return
    created = await session.execute(
        insert(Page).on_conflict_do_nothing(index_elements=["url"]).returning(Page.id, Page.url),
        rows,
    )
    articles = [page_id for page_id, url in created if TAG_SEGMENT not in url]
    await page_selection.set(session, articles, CurationStatus.Selected)


def page_urls(xml: str, source_url: str) -> list[str]:
    """The ``<url><loc>`` values of a sitemap; malformed XML is a `NonRetryableError`."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        raise NonRetryableError(f"malformed sitemap XML in {source_url}: {error}") from None
    locations = root.iterfind(f"{{{SITEMAP_NAMESPACE}}}url/{{{SITEMAP_NAMESPACE}}}loc")
    return [loc.text.strip() for loc in locations if loc.text and loc.text.strip()]
