"""Page curation for one page: fetch it, record its title and word count."""

from __future__ import annotations

import uuid
from html.parser import HTMLParser

from sqlalchemy.ext.asyncio import AsyncSession

from curate.demo.context import get_context
from curate.demo.models import Page


async def process_single_page_curation(item_id: uuid.UUID, session: AsyncSession) -> None:
    """Fetch the page and store its ``<title>`` and the number of words of its text.

    A 503 raises, so the workflow retries the page later; the writes commit with Complete.
    """
    page = await session.get_one(Page, item_id)
    reader = _PageReader()
    reader.feed(await get_context().fetch_text(page.url))
    reader.close()
    page.title = " ".join(reader.title) or None
    page.word_count = reader.word_count


class _PageReader(HTMLParser):
    """Collects the title and counts the words of the visible text.

    Tracking only the innermost open element is enough: title, script and style hold
    text only, never other elements.
    """

    _HIDDEN = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__()
        self.title: list[str] = []
        self.word_count = 0
        self._element: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element = tag

    def handle_endtag(self, tag: str) -> None:
        self._element = None

    def handle_data(self, data: str) -> None:
        words = data.split()
        if self._element == "title":
            self.title.extend(words)
        elif self._element not in self._HIDDEN:
            self.word_count += len(words)
