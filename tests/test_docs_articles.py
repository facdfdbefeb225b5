"""Executes docs/examples/articles: the how-tos on locks, queueing, stages and middleware."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate.clock import clock
from curate.testing import WorkflowHarness
from tests.test_docs import EXAMPLES

if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def example(name: str) -> Any:
    return importlib.import_module(f"articles.{name}")


async def test_articles_examples(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    models, workflows = example("models"), example("workflows")
    queueing, middleware, admin = example("queueing"), example("middleware"), example("admin")
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
        await conn.execute(
            models.Article.__table__.insert(),
            [
                {"id": i, "site": site, "url": f"https://{site}/{i}"}
                for i, site in enumerate(["a.example", "a.example", "broken.example"], 1)
            ],
        )
    middleware.install(runtime)
    everything = (workflows.fetch, workflows.summarise, workflows.check_link)
    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await queueing.select_articles(session, [1, 2])
        await queueing.fetch_first(session, 3)
    harness = WorkflowHarness(runtime)
    assert await admin.pause(workflows.fetch, "the sites are down")
    assert not await admin.pause(workflows.fetch, "again")
    assert (await harness.drain(workflows.fetch)).claimed == 0
    assert await harness.queued(workflows.fetch) == [1, 2, 3]
    assert await admin.resume(workflows.fetch)
    await harness.run_pending(*everything)
    assert await harness.complete(workflows.summarise) == [1, 2, 3]

    async with engine.connect() as conn:
        articles = {
            row.id: row
            for row in await conn.execute(select(models.Article.__table__).order_by("id"))
        }
        links = dict(
            (
                await conn.execute(
                    select(models.Link.check_link_status, func.count()).group_by(
                        models.Link.check_link_status
                    )
                )
            ).all()
        )
    assert [a.curation_status for a in articles.values()] == ["Selected", "Selected", "New"]
    assert all(a.fetch_status == a.summarise_status == "Complete" for a in articles.values())
    assert articles[1].summary == "Fetched from https://a.example/1. More a"
    assert links == {"Complete": 2, "Error": 1}  # one link per article; broken.example fails
    assert any("check_link:" in line and "does not answer" in line for line in middleware.reported)

    harness.freeze_time()
    try:
        async with sessionmaker() as session, session.begin():
            await queueing.fetch_again_tomorrow(session, 1)
            await queueing.fetch_at_midnight(session, 2)
        assert (await harness.drain(workflows.fetch)).claimed == 0
        assert await harness.queued(workflows.fetch) == [1, 2]
        harness.advance_time(days=1, seconds=1)
        assert (await harness.drain(workflows.fetch)).completed == 2
    finally:
        clock.unfreeze()
