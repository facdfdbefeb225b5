"""Queueing from the app: now, later, first."""

from datetime import UTC, datetime, timedelta

import curate
from sqlalchemy.ext.asyncio import AsyncSession

from articles.models import CurationStatus
from articles.workflows import article_selection, fetch


async def select_articles(session: AsyncSession, article_ids: list[int]) -> None:
    """A person picked these: mark them Selected and queue them for fetching."""
    await article_selection.set(session, article_ids, CurationStatus.Selected)


async def fetch_again_tomorrow(session: AsyncSession, article_id: int) -> None:
    await curate.queue(session, fetch, article_id, run_in=timedelta(days=1))


async def fetch_at_midnight(session: AsyncSession, article_id: int) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0) + timedelta(days=1)
    await curate.queue(session, fetch, article_id, run_at=midnight)


async def fetch_first(session: AsyncSession, article_id: int) -> None:
    await curate.queue(session, fetch, article_id, priority=10)  # default 0; higher first
