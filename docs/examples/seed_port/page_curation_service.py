"""A service shaped like the seed's page curation: its own transaction, a bool returned."""

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from seed_port.models import Page, PageCurationStatus

logger = logging.getLogger(__name__)


async def fetch_contact_email(url: str) -> str | None:
    """Stands in for the HTTP fetch and extraction: pages under /contact have an address."""
    if "/broken" in url:
        raise ConnectionError(f"cannot fetch {url}")
    return "hello@example.com" if "/contact" in url else None


class PageCurationService:
    async def process_single_page_for_curation(
        self, page_id: uuid.UUID, session: AsyncSession
    ) -> bool:
        """Manages its own transaction and sets the final status, as the SDK required."""
        async with session.begin():
            page = (await session.execute(select(Page).where(Page.id == page_id))).scalar_one()
            email = await fetch_contact_email(page.url)
            if email is None:
                page.page_curation_status = PageCurationStatus.Error
                page.page_curation_error = "no contact found"
                return False
            page.contact_email = email
            page.page_curation_status = PageCurationStatus.Completed
        return True
