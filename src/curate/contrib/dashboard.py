"""The HTML dashboard `curate_router` serves: server-rendered pages, no front-end build.

`render_dashboard` turns a `StatusReport` into the overview: per workflow the rows per
status (each a link to the workflow's item list, `curate.contrib.dashboard_items`), the
throughput, the oldest queued age, expired leases, whether it is paused (since when, why)
and its rate limit, charts of the last hours (`curate.contrib.charts`), the largest error
groups (each a link to its rows) and, when the router mounts the requeue endpoint, a button
that re-queues the workflow's errors. `page` is the frame every dashboard page shares.
Every value from the database is escaped. A small inline script refreshes a page's live
parts every ``refresh_seconds`` (it fetches the page and swaps the elements marked
``data-live`` in) and sends the requeue requests; without JavaScript a ``<noscript>`` meta
refresh reloads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from urllib.parse import urlencode

from curate.browsing import StatsSeries
from curate.contrib.charts import bar_chart, line_chart
from curate.operations import THROUGHPUT_WINDOW, StatusReport, WorkflowStatus

_COUNTS = (
    ("queued", "Queued"),
    ("processing", "Processing"),
    ("complete", "Complete"),
    ("error", "Error"),
    ("other", "Other"),
    ("unset", "No status"),
)

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
section { border: 1px solid #c8c8c8; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #d6d6d6; padding: .3rem .6rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding-bottom: .25rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .15rem 1rem; margin: .5rem 0; }
dt { color: #555; } dd { margin: 0; }
code { white-space: pre-wrap; word-break: break-word; }
button { font: inherit; padding: .35rem .8rem; cursor: pointer; }
.muted { color: #555; }
.paused { background: #fff1c2; border: 1px solid #b58a00; border-radius: 4px;
  padding: 0 .4rem; font-size: .9rem; }
#curate-message:not(:empty) { padding: .4rem .8rem; background: #eef5ff;
  border-left: 4px solid #2a62c9; }
a { color: #1d4fa8; }
nav { margin: 0 0 .5rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; margin: .5rem 0; }
.charts figure { margin: 0; } .charts figcaption { font-weight: 600; font-size: .9rem; }
.problem { color: #8a1010; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; }
form.filters label { display: flex; flex-direction: column; font-size: .9rem; }
input, select { font: inherit; padding: .25rem .4rem; }
"""

# Refresh: fetch this page, swap its [data-live] elements in by id (DOMParser runs no scripts;
# the server escaped every value). Requeue and cancel: POST the button's data-post-body
# (default {"errors": true}) to its data-post-url; the app's requeue_auth sees the browser's
# cookies and headers, and the JSON body and the page's own Origin pass the router's
# cross-site guard. data-verb names the action in the messages; data-confirm, if set, is
# asked first.
_SCRIPT = """
(() => {
  const every = Number(document.body.dataset.refreshSeconds) * 1000;
  const message = document.getElementById("curate-message");
  async function refresh() {
    try {
      const response = await fetch(location.href, {headers: {Accept: "text/html"}});
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const live of document.querySelectorAll("[data-live][id]")) {
        const fresh = page.getElementById(live.id);
        if (fresh) live.replaceWith(fresh);
      }
    } catch (error) { /* the next refresh tries again */ }
  }
  const rows = (n) => `${n} ${n === 1 ? "row" : "rows"}`;
  function done(body) {
    if ("requeued" in body) return `Re-queued ${rows(body.requeued)} in ${body.workflow}.`;
    return `Cancelled ${rows(body.cancelled)} in ${body.workflow};`
      + ` asked the workers of ${rows(body.asked)} running.`;
  }
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-post-url]");
    if (!button) return;
    const verb = button.dataset.verb || "Re-queue";
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.postUrl, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: button.dataset.postBody || JSON.stringify({errors: true}),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        message.textContent = done(body);
      } else {
        const detail = typeof body.detail === "string" ? body.detail : response.statusText;
        message.textContent = `${verb} refused (${response.status}): ${detail}`;
      }
    } catch (error) {
      message.textContent = `${verb} failed: ${error}`;
    }
    await refresh();
    button.disabled = false;  // a button outside the refreshed parts works again
  });
  setInterval(refresh, every);
})();
"""


CHART_HOURS = 6
"""The overview's charts cover this many hours (in 5-minute buckets)."""


def render_dashboard(
    report: StatusReport,
    *,
    base_path: str,
    requeue: bool,
    refresh_seconds: float,
    group_keys: Mapping[str, Sequence[str]],
    stats: Mapping[str, StatsSeries | str],
) -> str:
    """The overview. ``base_path``: where the router is mounted (``"/curate"``), for the
    links and requeue URLs; ``requeue``: whether the requeue endpoint is mounted (buttons
    shown); ``group_keys``: per workflow, the key of each error group, in order
    (`curate.sql.items.group_key`); ``stats``: per workflow, its charts' series or why
    there are none."""
    workflows = "\n".join(
        _workflow(
            w,
            base_path=base_path,
            requeue=requeue,
            keys=group_keys.get(w.name, ()),
            stats=stats.get(w.name, "no charts"),
        )
        for w in report.workflows
    )
    if not report.workflows:
        workflows = '<p class="muted">No workflows.</p>'
    body = f"""<header>
<h1>curate — workflows</h1>
<p class="muted">{_at(report.at)} Refreshes every {escape(f"{refresh_seconds:g}")} s.</p>
</header>
<main>
<p id="curate-message" role="status" aria-live="polite"></p>
<div id="curate-workflows" data-live>
{workflows}
</div>
</main>"""
    return page("curate — workflows", body, refresh_seconds=refresh_seconds)


def page(title: str, body: str, *, refresh_seconds: float) -> str:
    """A whole dashboard page around ``body`` (trusted markup, its values escaped by the
    caller): the style, the refresh of its ``data-live`` parts and the requeue buttons'
    script. A page that shows the requeue answer has ``<p id="curate-message">``."""
    refresh = escape(f"{refresh_seconds:g}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>
<style>{_STYLE}</style>
</head>
<body data-refresh-seconds="{refresh}">
{body}
<script>{_SCRIPT}</script>
</body>
</html>
"""


def link(base_path: str, name: str, **query: str | int | None) -> str:
    """The URL of ``name``'s item list under ``base_path`` with the given filters (None
    and empty values left out), escaped for an attribute."""
    given = {key: value for key, value in query.items() if value not in (None, "")}
    url = f"{base_path}/dashboard/workflows/{name}"
    return escape(f"{url}?{urlencode(given)}" if given else url)


def _at(at: datetime) -> str:
    stamp = escape(at.isoformat(timespec="seconds"))
    return f'<span id="curate-at" data-live>As of <time datetime="{stamp}">{stamp}</time>.</span>'


def _workflow(
    status: WorkflowStatus,
    *,
    base_path: str,
    requeue: bool,
    keys: Sequence[str],
    stats: StatsSeries | str,
) -> str:
    name = escape(status.name)
    counts = "".join(_count(status, key, base_path) for key, _ in _COUNTS)
    heads = "".join(f'<th scope="col">{label}</th>' for _, label in _COUNTS)
    window = int(THROUGHPUT_WINDOW.total_seconds() / 60)
    figures = (
        f'<dt>Throughput</dt><dd data-figure="throughput">{_per_minute(status)}'
        f' <span class="muted">(completions, last {window} min)</span></dd>'
        f"<dt>Oldest queued</dt><dd>{_seconds(status.oldest_queued_seconds)}</dd>"
        f"<dt>Expired leases</dt><dd>{_maybe(status.expired_leases)}</dd>"
        f"{_controls(status)}"
    )
    button = ""
    if requeue:
        errors = status.counts["error"]
        url = f"{base_path}/workflows/{status.name}/requeue"
        disabled = " disabled" if errors == 0 else ""
        rows = "row" if errors == 1 else "rows"
        button = (
            f'<p><button type="button" data-post-url="{escape(url)}"{disabled}'
            f' aria-label="Re-queue the {errors} {rows} in Error in {name}">'
            f"Re-queue errors ({errors})</button></p>"
        )
    return f"""<section id="workflow-{name}" aria-labelledby="workflow-{name}-title">
<h2 id="workflow-{name}-title">{name}
<span class="muted">on table {escape(status.table)}</span>{_paused_badge(status)}</h2>
<nav><a href="{link(base_path, status.name)}">Items of {name}</a></nav>
<table>
<caption>Rows per status</caption>
<thead><tr>{heads}</tr></thead>
<tbody><tr>{counts}</tr></tbody>
</table>
<dl>{figures}</dl>
{_charts(status.name, stats)}
{_errors(status, keys, base_path)}
{button}
</section>"""


def _paused_badge(status: WorkflowStatus) -> str:
    return ' <span class="paused" data-paused>paused</span>' if status.paused else ""


def _controls(status: WorkflowStatus) -> str:
    """The pause (since when, why) and the rate limit, as rows of the figures."""
    rows = ""
    if status.paused:
        reason = f" <span>— {escape(status.paused_reason)}</span>" if status.paused_reason else ""
        since = time_element(status.paused_at)
        rows += f'<dt>Paused</dt><dd data-figure="paused">since {since}{reason}</dd>'
    if status.rate_limit is not None:
        rows += f'<dt>Rate limit</dt><dd data-figure="rate-limit">{status.rate_limit:g}/s</dd>'
    return rows


def _count(status: WorkflowStatus, key: str, base_path: str) -> str:
    """A count's cell; one of the workflow's statuses, or ``other``, links to its rows."""
    count = status.counts[key]
    if key == "unset":
        return f'<td class="n" data-count="{key}">{count}</td>'
    href = link(base_path, status.name, status=key)
    return f'<td class="n"><a href="{href}" data-count="{key}">{count}</a></td>'


def _charts(name: str, stats: StatsSeries | str) -> str:
    """Completions, failures and queue depth over the last hours, or why there are none."""
    if isinstance(stats, str):
        return f'<p class="muted" data-charts="none">{escape(stats)}</p>'
    minutes = stats.bucket_seconds // 60
    completed = [(b.start, float(b.completed)) for b in stats.buckets]
    failed = [(b.start, float(b.failed)) for b in stats.buckets]
    queued = [(b.start, None if b.queued is None else float(b.queued)) for b in stats.buckets]
    figures = (
        ("completed", f"Completed per {minutes} min", bar_chart, completed, "#2a7a3b"),
        ("failed", f"Failed per {minutes} min", bar_chart, failed, "#b3261e"),
        ("queued", "Queue depth (highest sample)", line_chart, queued, "#2a62c9"),
    )
    charts = ""
    for kind, title, draw, series, color in figures:
        svg = draw(
            f"chart-{name}-{kind}", f"{name}: {title}, last {stats.hours} h", series, color=color
        )
        charts += (
            f'<figure data-chart="{kind}"><figcaption>{escape(title)}</figcaption>{svg}</figure>'
        )
    return f'<div class="charts" aria-label="Last {stats.hours} hours">{charts}</div>'


def _errors(status: WorkflowStatus, keys: Sequence[str], base_path: str) -> str:
    """The largest error groups; each message links to the group's rows."""
    if not status.errors:
        return '<p class="muted" data-errors="none">No errors.</p>'
    rows = "".join(
        "<tr data-error-group>"
        f'<td class="n">{group.rows}</td>'
        f'<td><a href="{link(base_path, status.name, status="error", group=key)}">'
        f"<code>{escape(group.message)}</code></a></td>"
        f"<td><code>{escape(group.example)}</code></td>"
        f"<td>{time_element(group.last_seen)}</td>"
        "</tr>"
        for group, key in zip(status.errors, keys, strict=True)
    )
    return (
        "<table>\n<caption>Recent errors, largest groups first</caption>\n"
        '<thead><tr><th scope="col">Rows</th><th scope="col">Message</th>'
        '<th scope="col">Example</th><th scope="col">Last seen</th></tr></thead>\n'
        f"<tbody>{rows}</tbody>\n</table>"
    )


def _per_minute(status: WorkflowStatus) -> str:
    if status.throughput_per_minute is None:
        return "—"
    return f"{status.throughput_per_minute:g}/min"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:g} s"


def _maybe(value: int | None) -> str:
    return "—" if value is None else str(value)


def time_element(value: datetime | None) -> str:
    """``value`` as a ``<time>`` element (``—`` for None)."""
    if value is None:
        return "—"
    stamp = escape(value.isoformat(timespec="seconds"))
    return f'<time datetime="{stamp}">{stamp}</time>'
