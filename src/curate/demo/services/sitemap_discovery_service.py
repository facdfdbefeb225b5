"""Sitemap discovery for one domain: read robots.txt, create and queue its sitemap files."""

from __future__ import annotations

import uuid
from urllib.parse import urljoin

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from curate.demo.context import get_context
from curate.demo.models import CurationStatus, Domain, SitemapFile
from curate.demo.services.sitemap_import_scheduler import sitemap_file_selection


async def process_single_sitemap_discovery(item_id: uuid.UUID, session: AsyncSession) -> None:
    """Create a sitemap file for each ``Sitemap:`` line of the domain's robots.txt.

    The new files are selected and queued for import in this transaction, which curate
    commits together with the domain's Complete. Files already known are left alone, so
    discovering a domain again is harmless.
    """
    domain = await session.get_one(Domain, item_id)
    robots = await get_context().fetch_text(urljoin(domain.url, "robots.txt"))
    rows = [{"domain_id": domain.id, "url": url} for url in sitemap_urls(robots)]
    if not rows:
        return
    created = await session.scalars(
        insert(SitemapFile)
        .on_conflict_do_nothing(index_elements=["url"])
        .returning(SitemapFile.id),
        rows,
    )
    await sitemap_file_selection.set(session, created.all(), CurationStatus.Selected)


def sitemap_urls(robots_txt: str) -> list[str]:
    """The URLs of the ``Sitemap:`` lines (the field name is case-insensitive)."""
    urls = []
    for line in robots_txt.splitlines():
        field, _, value = line.partition(":")
        if field.strip().lower() == "sitemap" and value.strip():
            urls.append(value.strip())
    return urls
