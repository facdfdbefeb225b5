"""Three workflows: fetch (one request per site at a time) → summarise, and check_link."""

import curate
from curate import DualStatus, NonRetryableError, Workflow
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from articles.models import Article, CurationStatus, Link


# docs: start fetch_article
async def fetch_article(article_id: int, session: AsyncSession) -> None:
    article = await session.get_one(Article, article_id)
    article.body = f"Fetched from {article.url}. More at https://{article.site}/about"
    # Hand on to the next stages in this transaction: they are queued if, and only if,
    # this article's Complete commits.
    await curate.queue(session, summarise, article.id)
    links = await session.scalars(
        insert(Link).returning(Link.id),
        [
            {"article_id": article.id, "url": w}
            for w in article.body.split()
            if w.endswith("/about")
        ],
    )
    await curate.queue(session, check_link, links.all())  # fan-out: one article, many links


# docs: end fetch_article


async def summarise_article(article_id: int, session: AsyncSession) -> None:
    article = await session.get_one(Article, article_id)
    article.summary = (article.body or "")[:40]


async def check_one_link(link_id: int, session: AsyncSession) -> None:
    link = await session.get_one(Link, link_id)
    if "broken" in link.url:
        raise NonRetryableError(f"{link.url} does not answer")  # no retry: Error at once


# docs: start declarations
fetch = Workflow("fetch", model=Article, service=fetch_article, concurrency=8, lock_key="site")
summarise = Workflow("summarise", model=Article, service=summarise_article)
check_link = Workflow(
    "check_link",
    model=Link,
    service=check_one_link,
    rate_limit=20,  # per second, all workers
)

article_selection = DualStatus(Article.curation_status, {CurationStatus.Selected: fetch})
"""Selecting an article queues it for fetching, in the same transaction."""
# docs: end declarations
