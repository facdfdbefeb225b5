"""The dashboard's pages of one workflow's items: the list (filtered, searched, paged) and
one item's page, in the frame of `curate.contrib.dashboard.page`.

The list links each row to its item page; the item page shows the row's status columns,
its attempts (`attempt_history`) and, when the router mounts the write endpoints, buttons
that re-queue or cancel this one row. Every value from the database is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from curate.browsing import ItemList, ItemSummary
from curate.contrib.dashboard import link, page, time_element
from curate.operations import Attempt, ItemState
from curate.sql.items import STATUSES, ItemFilter


@dataclass(frozen=True)
class ListView:
    """What the list page shows besides the rows: the workflow, the filters as typed (the
    id as text, to show it back when it was refused) and why the id was refused."""

    workflow: str
    table: str
    key_type: str  # the primary key's type, as the search field's hint: "int", "UUID"
    chosen: ItemFilter
    id_text: str
    problem: str | None  # the id's refusal; the list is then empty


def render_item_list(
    view: ListView, listing: ItemList, *, base_path: str, refresh_seconds: float
) -> str:
    """The list page: the filter form, a page of rows (newest first), previous/next links."""
    name = escape(view.workflow)
    chosen = view.chosen
    options = "".join(
        f'<option value="{status}"{" selected" if chosen.status == status else ""}>'
        f"{status or 'any status'}</option>"
        for status in ("", *STATUSES)
    )
    group = ""
    if chosen.error_group is not None:
        everything = link(base_path, view.workflow, status=chosen.status, q=chosen.error_contains)
        group = (
            f'<input type="hidden" name="group" value="{escape(chosen.error_group)}">'
            f'<p data-filter="group">The rows of one error group.'
            f' <a href="{everything}">Show all rows</a></p>'
        )
    problem = ""
    described = ""
    if view.problem is not None:
        problem = f'<p class="problem" id="id-problem" role="alert">{escape(view.problem)}</p>'
        described = ' aria-invalid="true" aria-describedby="id-problem"'
    hint = escape(f"{view.key_type} ({view.table} primary key)")
    body = f"""<header>
<nav><a href="{escape(base_path)}/dashboard">All workflows</a></nav>
<h1>{name} — items</h1>
<p class="muted">Rows of table {escape(view.table)}, newest first.
Refreshes every {escape(f"{refresh_seconds:g}")} s.</p>
</header>
<main>
<form class="filters" method="get" role="search" action="{link(base_path, view.workflow)}">
<label>Status <select name="status">{options}</select></label>
<label>Id <input name="id" value="{escape(view.id_text)}" placeholder="{hint}"{described}></label>
<label>Error contains <input type="search" name="q" value="{escape(chosen.error_contains or "")}"
 placeholder="any case"></label>
<button type="submit">Show</button>
{group}
</form>
{problem}
<div id="curate-items" data-live>
{_rows(view, listing, base_path)}
{_pages(view, listing, base_path)}
</div>
</main>"""
    return page(f"curate — {view.workflow} items", body, refresh_seconds=refresh_seconds)


def _rows(view: ListView, listing: ItemList, base_path: str) -> str:
    if not listing.items:
        return '<p class="muted" data-items="none">No rows match.</p>'
    rows = "".join(_row(view.workflow, item, base_path) for item in listing.items)
    return (
        f"<table>\n<caption>Page {listing.page}</caption>\n"
        '<thead><tr><th scope="col">Id</th><th scope="col">Status</th>'
        '<th scope="col">Error (first line)</th><th scope="col">Attempts</th>'
        '<th scope="col">Updated</th></tr></thead>\n'
        f"<tbody>{rows}</tbody>\n</table>"
    )


def _row(workflow: str, item: ItemSummary, base_path: str) -> str:
    href = escape(item_path(base_path, workflow, item.id))
    return (
        "<tr data-item>"
        f'<td><a href="{href}">{escape(str(item.id))}</a></td>'
        f"<td>{_text(item.status)}</td>"
        f"<td><code>{_text(item.error)}</code></td>"
        f'<td class="n">{_text(item.attempts)}</td>'
        f"<td>{time_element(item.updated_at)}</td>"
        "</tr>"
    )


def item_path(base_path: str, workflow: str, item_id: Any) -> str:
    """The URL of an item's page (the id quoted: a text key may hold ``/`` or spaces)."""
    return f"{base_path}/dashboard/workflows/{workflow}/items/{quote(str(item_id), safe='')}"


def _pages(view: ListView, listing: ItemList, base_path: str) -> str:
    """Previous and next links, keeping the filters."""
    chosen = view.chosen

    def to(number: int) -> str:
        return link(
            base_path,
            view.workflow,
            status=chosen.status,
            id=view.id_text,
            q=chosen.error_contains,
            group=chosen.error_group,
            page=number if number > 1 else None,
        )

    links = []
    if listing.page > 1:
        links.append(f'<a rel="prev" href="{to(listing.page - 1)}">Previous page</a>')
    if listing.has_next:
        links.append(f'<a rel="next" href="{to(listing.page + 1)}">Next page</a>')
    return f'<nav aria-label="Pages">{" ".join(links)}</nav>' if links else ""


def render_item(
    workflow: str,
    item: ItemState,
    attempts: Sequence[Attempt] | None,
    *,
    base_path: str,
    requeue: bool,
    refresh_seconds: float,
) -> str:
    """One item's page: its status columns and its ``attempts`` (newest first; None: not
    recorded), and with ``requeue`` (the write endpoints are mounted) buttons that re-queue
    or cancel it (``{"ids": [id]}`` to the requeue and cancel endpoints)."""
    name = escape(workflow)
    shown = escape(str(item.id))
    fields = (
        ("Status", _text(item.status)),
        ("Error", "—" if item.error is None else f"<pre><code>{escape(item.error)}</code></pre>"),
        ("Attempts", _text(item.attempts)),
        ("Not before", time_element(item.run_after)),
        ("Claimed by", _text(item.claimed_by)),
        ("Lease until", time_element(item.lease_until)),
        ("Updated", time_element(item.updated_at)),
    )
    columns = "".join(
        f'<dt>{label}</dt><dd data-field="{label.lower().replace(" ", "-")}">{value}</dd>'
        for label, value in fields
    )
    buttons = ""
    if requeue:
        body = escape(json.dumps({"ids": [item.id if isinstance(item.id, int) else str(item.id)]}))
        url = f"{escape(base_path)}/workflows/{name}"
        buttons = (
            f'<p><button type="button" data-post-url="{url}/requeue" data-post-body="{body}">'
            "Re-queue this item</button>"
            f' <button type="button" data-post-url="{url}/cancel" data-post-body="{body}"'
            f' data-verb="Cancel" data-confirm="Cancel item {shown} of {name}?">'
            "Cancel this item</button></p>"
        )
    body = f"""<header>
<nav><a href="{escape(base_path)}/dashboard">All workflows</a> &rsaquo;
<a href="{link(base_path, workflow)}">Items of {name}</a></nav>
<h1>{name} — item {shown}</h1>
<p class="muted">Refreshes every {escape(f"{refresh_seconds:g}")} s.</p>
</header>
<main>
<p id="curate-message" role="status" aria-live="polite"></p>
<dl id="curate-item" data-live>{columns}</dl>
{buttons}
<div id="curate-attempts" data-live>{attempt_history(attempts)}</div>
</main>"""
    return page(f"curate — {workflow} item {item.id}", body, refresh_seconds=refresh_seconds)


def attempt_history(attempts: Sequence[Attempt] | None) -> str:
    """The item's attempts, newest first, as a table (the traceback of a failure behind a
    disclosure); a note where none is recorded."""
    if attempts is None:
        return (
            '<p class="muted" data-history="off">Attempts are not recorded: curate_attempts'
            " does not exist (curate db upgrade).</p>"
        )
    if not attempts:
        return '<p class="muted" data-history="none">No attempts yet.</p>'
    rows = "".join(_attempt_row(attempt) for attempt in attempts)
    return (
        '<table id="curate-history">\n<caption>Attempts, newest first</caption>\n'
        '<thead><tr><th scope="col">#</th><th scope="col">Outcome</th>'
        '<th scope="col">Ended</th><th scope="col">Took</th><th scope="col">Worker</th>'
        '<th scope="col">Error</th></tr></thead>\n'
        f"<tbody>{rows}</tbody>\n</table>"
    )


def _attempt_row(attempt: Attempt) -> str:
    took = "—"
    if attempt.started_at is not None:
        took = f"{(attempt.ended_at - attempt.started_at).total_seconds():.3f} s"
    error = "—"
    if attempt.error is not None:
        error = f"<code>{escape(attempt.error)}</code>"
        if attempt.traceback:
            error += (
                "<details><summary>Where</summary>"
                f"<pre><code>{escape(attempt.traceback)}</code></pre></details>"
            )
    return (
        f'<tr data-attempt="{attempt.attempt}" data-outcome="{escape(attempt.outcome)}">'
        f'<td class="n">{attempt.attempt}</td><td>{escape(attempt.outcome)}</td>'
        f"<td>{time_element(attempt.ended_at)}</td><td>{took}</td>"
        f"<td>{_text(attempt.worker)}</td><td>{error}</td></tr>"
    )


def _text(value: Any) -> str:
    return "—" if value is None else escape(str(value))
