"""The example pipeline end to end on real PostgreSQL: in-process, in the app, as `curate demo`."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Executable, Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import ProcessingStatus
from curate.cli import main
from curate.demo.app import create_app
from curate.demo.models import CurationStatus, Domain, Page, SitemapFile
from curate.demo.pipeline import is_drained
from curate.demo.runner import run_demo
from curate.demo.site import DemoSite, page_title, page_word_count
from curate.testing import wait_until

ARTICLE = re.compile(r"/(site-\d+)/s(\d+)/article-(\d+)\.html$")


Query = Callable[[Executable], Awaitable[list[Row[Any]]]]


@pytest.fixture
def query(admin_engine: AsyncEngine, schema: str) -> Query:
    """Run a statement on the demo's models in the test's schema; no connection stays open
    (it would hold locks that the next run's TRUNCATE waits for)."""

    async def run(statement: Executable) -> list[Row[Any]]:
        async with admin_engine.connect() as conn:
            conn = await conn.execution_options(schema_translate_map={None: schema})
            return list((await conn.execute(statement)).all())

    return run


async def test_the_pipeline_drains_with_the_expected_outcome(
    settings: curate.CurateSettings, query: Query, capsys: pytest.CaptureFixture[str]
) -> None:
    site = DemoSite(domains=4)
    assert (site.malformed_sitemap_count, site.article_count) == (1, 77)
    assert site.flaky_article_count > 0

    summary = await run_demo(settings, domains=4)

    outcome = {w.name: (w.complete, w.error, w.retried) for w in summary.workflows}
    assert outcome == {
        "sitemap_discovery": (4, 0, 0),
        "sitemap_import": (11, 1, 0),
        "page_curation": (77, 0, site.flaky_article_count),
        "sitemap_finalise": (11, 0, 0),
    }
    assert "curate demo: 4 domains, pipeline drained in" in capsys.readouterr().out

    # The fan-in: each imported sitemap file counted its pages once all were curated; the
    # malformed one, never imported, was never finalised.
    files = await query(select(SitemapFile.__table__))
    imported = [f for f in files if f.sitemap_import_status == ProcessingStatus.Complete]
    assert {f.sitemap_finalise_status for f in imported} == {ProcessingStatus.Complete}
    assert sum(f.pages_complete for f in imported) == site.article_count
    assert {f.pages_failed for f in imported} == {0}
    [broken] = [f for f in files if f.sitemap_import_status == ProcessingStatus.Error]
    assert (broken.sitemap_finalise_status, broken.pages_complete) == (None, None)

    [(error,)] = await query(
        select(SitemapFile.sitemap_import_error).where(
            SitemapFile.sitemap_import_status == ProcessingStatus.Error
        )
    )
    assert re.fullmatch(
        r"NonRetryableError: malformed sitemap XML in http://127\.0\.0\.1:\d+/site-002/"
        r"sitemap-0\.xml: no element found: line 1, column \d+",
        error,
    ), error

    pages = await query(select(Page.__table__))
    assert len(pages) == site.article_count + site.tag_page_count
    articles = [p for p in pages if ARTICLE.search(p.url)]
    assert {p.curation_status for p in articles} == {CurationStatus.Selected}
    assert {p.page_curation_status for p in articles} == {ProcessingStatus.Complete}
    assert sum(p.page_curation_attempts == 2 for p in articles) == site.flaky_article_count
    for page in articles:
        name, sitemap, article = ARTICLE.search(page.url).groups()  # type: ignore[union-attr]
        assert page.title == page_title(name, int(sitemap), int(article))
        assert page.word_count == page_word_count(int(sitemap), int(article))
    tag_pages = [p for p in pages if not ARTICLE.search(p.url)]
    assert {(p.curation_status, p.page_curation_status) for p in tag_pages} == {
        (CurationStatus.New, None)
    }

    # Running again on the same database starts from a fresh seed.
    again = await run_demo(settings, domains=2)
    assert [w.complete for w in again.workflows] == [2, 6, 42, 6]
    assert await query(select(func.count()).select_from(Domain)) == [(2,)]


async def test_bad_workflow_settings_stop_the_demo_before_it_writes(
    settings: curate.CurateSettings,
    admin_engine: AsyncEngine,
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGE_CURATION_SCHEDULER_BATCH_SIZE", "0")
    with pytest.raises(
        curate.ConfigurationError, match="PAGE_CURATION_SCHEDULER_BATCH_SIZE='0' is invalid"
    ):
        await run_demo(settings, domains=1)
    tables = (  # curate's own come with the schema (the fixture)
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"
        " AND table_name NOT LIKE 'curate\\_%'"
    )
    async with admin_engine.connect() as conn:
        assert (await conn.execute(text(tables), {"s": schema})).scalar() == 0


async def test_the_app_runs_the_pipeline_from_its_lifespan(settings: curate.CurateSettings) -> None:
    app = create_app(settings, domains=2)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo") as client,
    ):

        async def drained() -> bool:
            counts = (await client.get("/status")).json()
            return is_drained(counts)

        await wait_until(drained, what="the app's pipeline to drain")
        status = (await client.get("/status")).json()
        pages = (await client.get("/pages", params={"limit": 5})).json()

    assert status == {
        "sitemap_discovery": {"Complete": 2},
        "sitemap_import": {"Complete": 6},
        "page_curation": {"Complete": 42},
        "sitemap_finalise": {"Complete": 6},
    }
    assert len(pages) == 5
    assert all(page["title"].startswith("site-00") and page["word_count"] > 0 for page in pages)


def test_configuration_errors_exit_2_without_a_traceback() -> None:
    result = CliRunner().invoke(main, ["demo"], env={"CURATE_LOG_LEVEL": "LOUD"})
    assert result.exit_code == 2
    assert "CURATE_LOG_LEVEL='LOUD' is invalid" in result.output
    assert "Traceback" not in result.output


async def curate_demo(env: dict[str, str]) -> tuple[str, str]:
    """``curate demo --domains 3`` with ``env``: its output and its log (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("curate")),
        "demo",
        "--domains",
        "3",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()[-3000:]
    return stdout.decode(), stderr.decode()


async def test_curate_demo_command(database_url: str, schema: str) -> None:
    env = {**os.environ, "CURATE_DATABASE_URL": database_url, "CURATE_DATABASE_SCHEMA": schema}
    output, logged = await curate_demo(env)
    assert "curate demo: 3 domains, pipeline drained in" in output
    assert "Traceback" not in logged and "Exception closing connection" not in logged, logged
    assert "NonRetryableError: malformed sitemap XML" in logged  # one line, on purpose
    rows = {line.split()[0]: line.split()[1:4] for line in output.splitlines()[3:]}
    site = DemoSite(domains=3)
    assert rows == {
        "sitemap_discovery": ["3", "0", "0"],
        "sitemap_import": ["8", "1", "0"],
        "page_curation": [str(site.article_count), "0", str(site.flaky_article_count)],
        "sitemap_finalise": ["8", "0", "0"],
    }
