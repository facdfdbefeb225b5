"""The dashboard's item lists and item pages, and the JSON list, on the real database: filters
by status, id, error text and error group, paging, refused ids, escaping, the requeue button
(the browser test is tests/test_dashboard_browser.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from curate import ProcessingStatus
from curate.contrib.fastapi import curate_router
from tests.cli_app import WORKFLOWS
from tests.models import Item
from tests.test_fastapi import SEED_ID, client, insert_rows, require_token, router_app

Q, E = ProcessingStatus.Queued, ProcessingStatus.Error


async def insert_errors(engine: AsyncEngine) -> None:
    """Rows 1-5 in Error, updated a minute apart (5 the newest); 6 Queued."""
    start = datetime.now(UTC) - timedelta(hours=1)
    errors = [
        "TimeoutError: after 30 s",
        "ValueError: row 2",
        "ValueError: row 3",
        "KeyError: 100%_done",
        "ValueError: <b>row</b> 5 & more",
    ]
    rows: list[dict[str, Any]] = [
        {
            "id": n,
            "work_status": E,
            "work_error": error,
            "work_attempts": n,
            "updated_at": start + timedelta(minutes=n),
        }
        for n, error in enumerate(errors, start=1)
    ]
    rows.append(
        {"id": 6, "work_status": Q, "work_error": None, "work_attempts": 0, "updated_at": start}
    )
    async with engine.begin() as conn:
        await conn.execute(insert(Item), rows)


async def listed(http: Any, **query: Any) -> list[int]:
    response = await http.get("/curate/workflows/work/items", params=query)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_the_list_filters_by_status_id_and_error_text(engine: AsyncEngine) -> None:
    await insert_errors(engine)
    async with client(router_app()) as http:
        assert await listed(http) == [5, 4, 3, 2, 1, 6]  # newest updated_at first
        assert await listed(http, status="error") == [5, 4, 3, 2, 1]
        assert await listed(http, status="queued") == [6]
        assert await listed(http, status="other") == []
        assert await listed(http, q="VALUEerror:") == [5, 3, 2]  # any case
        assert await listed(http, q="%_") == [4]  # LIKE's wildcards are literal
        assert await listed(http, status="error", id="3") == [3]
        assert await listed(http, status="queued", id="3") == []
        first = (await http.get("/curate/workflows/work/items", params={"id": 5})).json()
        seed = await http.get("/curate/workflows/seed/items", params={"id": str(SEED_ID)})
    assert first == {
        "items": [
            {
                "id": 5,
                "status": "Error",
                "error": "ValueError: <b>row</b> 5 & more",
                "attempts": 5,
                "updated_at": first["items"][0]["updated_at"],
            }
        ],
        "page": 1,
        "per_page": 50,
        "has_next": False,
    }
    assert seed.json()["items"] == []  # a UUID key: converted, no such row


async def test_bad_ids_are_refused_with_the_accepted_form(engine: AsyncEngine) -> None:
    await insert_errors(engine)
    async with client(router_app()) as http:
        api = await http.get("/curate/workflows/work/items", params={"id": "abc"})
        big = await http.get("/curate/workflows/work/items", params={"id": 2**40})
        page = await http.get("/curate/dashboard/workflows/work", params={"id": "<abc>"})
        seed = await http.get("/curate/dashboard/workflows/seed", params={"id": "7"})
    assert api.status_code == 422
    assert api.json()["detail"] == [
        {
            "loc": ["query", "id"],
            "msg": "'abc' is not a valid int (the type of items.id)",
            "type": "value_error",
        }
    ]
    assert "out of range for items.id (32-bit integer)" in big.text
    assert page.status_code == 422
    html = page.text
    assert (
        '<p class="problem" id="id-problem" role="alert">&#x27;&lt;abc&gt;&#x27; is not a valid'
        " int (the type of items.id)</p>"
    ) in html
    # The id is shown back in its field, with the form it should take.
    assert 'name="id" value="&lt;abc&gt;" placeholder="int (items primary key)"' in html
    assert 'aria-invalid="true"' in html and 'data-items="none"' in html
    assert "is not a valid UUID (the type of seed_items.id)" in seed.text


async def test_pages_of_fifty_with_previous_and_next(engine: AsyncEngine) -> None:
    rows = [{"id": n, "work_status": Q, "work_error": None} for n in range(1, 121)]
    async with engine.begin() as conn:
        await conn.execute(insert(Item), rows)
    async with client(router_app()) as http:
        pages = [
            (await http.get("/curate/workflows/work/items", params={"page": n})).json()
            for n in (1, 2, 3)
        ]
        html = (await http.get("/curate/dashboard/workflows/work?status=queued&page=2")).text
        refused = await http.get("/curate/workflows/work/items", params={"page": 0})
    # Equal updated_at: by primary key, descending; every row once.
    ids = [item["id"] for answer in pages for item in answer["items"]]
    assert ids == list(range(120, 0, -1))
    assert [(p["page"], len(p["items"]), p["has_next"]) for p in pages] == [
        (1, 50, True),
        (2, 50, True),
        (3, 20, False),
    ]
    assert '<a rel="prev" href="/curate/dashboard/workflows/work?status=queued">' in html
    assert '<a rel="next" href="/curate/dashboard/workflows/work?status=queued&amp;page=3">' in html
    assert html.count("<tr data-item>") == 50
    assert refused.status_code == 422


async def test_error_groups_link_to_their_rows(engine: AsyncEngine) -> None:
    await insert_rows(engine)  # rows 4 and 5: "ValueError: row N"
    async with engine.begin() as conn:
        await conn.execute(
            insert(Item),
            [{"id": 9, "work_status": E, "work_error": "OSError: 9 ann@example.org"}],
        )
    async with client(router_app()) as http:
        overview = (await http.get("/curate/dashboard")).text
        links = re.findall(r'<a href="([^"]+group=[0-9a-f]{16})"><code>([^<]*)</code>', overview)
        lists = {
            message: (await http.get(href.replace("&amp;", "&"))).text for href, message in links
        }
    assert {message for _, message in links} == {"ValueError: row N", "OSError: N &lt;email&gt;"}
    assert all("example.org" not in href for href, _ in links)  # the key, not the text
    rows = {
        m: re.findall(r"<tr data-item><td><a [^>]*>(\d+)</a>", page) for m, page in lists.items()
    }
    assert rows == {"ValueError: row N": ["5", "4"], "OSError: N &lt;email&gt;": ["9"]}
    assert "ann@example.org" not in lists["OSError: N &lt;email&gt;"]  # redacted in the list
    # Each workflow links to its list, each count to its status' rows.
    assert '<a href="/curate/dashboard/workflows/work">Items of work</a>' in overview
    assert (
        '<a href="/curate/dashboard/workflows/work?status=error" data-count="error">3</a>'
    ) in overview


async def test_the_item_page_escapes_and_requeues_only_with_auth(engine: AsyncEngine) -> None:
    await insert_errors(engine)
    app = FastAPI()
    app.include_router(curate_router(WORKFLOWS, requeue_auth=require_token), prefix="/ops")
    async with client(router_app()) as http:
        plain = await http.get("/curate/dashboard/workflows/work/items/5")
        missing = await http.get("/curate/dashboard/workflows/work/items/77")
        bad = await http.get("/curate/dashboard/workflows/work/items/x")
    async with client(app) as http:
        with_auth = (await http.get("/ops/dashboard/workflows/work/items/5")).text
        listing = (await http.get("/ops/dashboard/workflows/work")).text
    assert plain.status_code == 200
    assert plain.headers["cache-control"] == "no-store"
    page = plain.text
    assert "<h1>work — item 5</h1>" in page
    assert (
        '<dd data-field="error"><pre><code>ValueError: &lt;b&gt;row&lt;/b&gt; 5 &amp; more'
        "</code></pre></dd>"
    ) in page
    assert '<dd data-field="attempts">5</dd>' in page and "<b>" not in page
    assert "<button" not in page  # no requeue endpoint, no button
    assert (missing.status_code, bad.status_code) == (404, 422)
    assert "no item 77 in items" in missing.text
    body = 'data-post-body="{&quot;ids&quot;: [5]}"'
    assert (
        f'<button type="button" data-post-url="/ops/workflows/work/requeue" {body}>'
        "Re-queue this item</button>"
    ) in with_auth
    assert (
        f'<button type="button" data-post-url="/ops/workflows/work/cancel" {body}'
        ' data-verb="Cancel" data-confirm="Cancel item 5 of work?">Cancel this item</button>'
    ) in with_auth
    assert '<a href="/ops/dashboard/workflows/work/items/5">5</a>' in listing
