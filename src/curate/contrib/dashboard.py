"""The HTML dashboard `curate_router` serves: one server-rendered page, no front-end build.

`render_dashboard` turns a `StatusReport` into a page: per workflow the rows per status,
the throughput, the oldest queued age, expired leases, whether it is paused (since when,
why) and its rate limit, the largest error groups and, when the router mounts the
requeue endpoint, a button that re-queues the workflow's errors.
Every value from the database is escaped. A small inline script refreshes the page's
figures every ``refresh_seconds`` (it fetches the page and swaps the workflows in) and
sends the requeue requests; without JavaScript a ``<noscript>`` meta refresh reloads it.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

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
"""

# Refresh: fetch this page, swap #curate-workflows in (DOMParser runs no scripts; the server
# escaped every value). Requeue: POST {"errors": true} to the button's data-url; the app's
# requeue_auth sees the browser's cookies and headers, and the JSON body and the page's own
# Origin pass the router's cross-site guard.
_SCRIPT = """
(() => {
  const every = Number(document.body.dataset.refreshSeconds) * 1000;
  const message = document.getElementById("curate-message");
  async function refresh() {
    try {
      const response = await fetch(location.href, {headers: {Accept: "text/html"}});
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const id of ["curate-workflows", "curate-at"]) {
        const fresh = page.getElementById(id);
        if (fresh) document.getElementById(id).replaceWith(fresh);
      }
    } catch (error) { /* the next refresh tries again */ }
  }
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-requeue-url]");
    if (!button) return;
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.requeueUrl, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({errors: true}),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        const rows = body.requeued === 1 ? "row" : "rows";
        message.textContent = `Re-queued ${body.requeued} ${rows} in ${body.workflow}.`;
      } else {
        const detail = typeof body.detail === "string" ? body.detail : response.statusText;
        message.textContent = `Re-queue refused (${response.status}): ${detail}`;
      }
    } catch (error) {
      message.textContent = `Re-queue failed: ${error}`;
    }
    await refresh();
  });
  setInterval(refresh, every);
})();
"""


def render_dashboard(
    report: StatusReport, *, base_path: str, requeue: bool, refresh_seconds: float
) -> str:
    """The whole page. ``base_path``: where the router is mounted (``"/curate"``), for the
    requeue URLs; ``requeue``: whether the requeue endpoint is mounted (buttons shown)."""
    workflows = "\n".join(
        _workflow(w, base_path=base_path, requeue=requeue) for w in report.workflows
    )
    if not report.workflows:
        workflows = '<p class="muted">No workflows.</p>'
    refresh = f"{refresh_seconds:g}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>curate — workflows</title>
<noscript><meta http-equiv="refresh" content="{escape(refresh)}"></noscript>
<style>{_STYLE}</style>
</head>
<body data-refresh-seconds="{escape(refresh)}">
<header>
<h1>curate — workflows</h1>
<p class="muted">{_at(report.at)} Refreshes every {escape(refresh)} s.</p>
</header>
<main>
<p id="curate-message" role="status" aria-live="polite"></p>
<div id="curate-workflows">
{workflows}
</div>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _at(at: datetime) -> str:
    stamp = escape(at.isoformat(timespec="seconds"))
    return f'<span id="curate-at">As of <time datetime="{stamp}">{stamp}</time>.</span>'


def _workflow(status: WorkflowStatus, *, base_path: str, requeue: bool) -> str:
    name = escape(status.name)
    counts = "".join(
        f'<td class="n" data-count="{key}">{status.counts[key]}</td>' for key, _ in _COUNTS
    )
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
            f'<p><button type="button" data-requeue-url="{escape(url)}"{disabled}'
            f' aria-label="Re-queue the {errors} {rows} in Error in {name}">'
            f"Re-queue errors ({errors})</button></p>"
        )
    return f"""<section id="workflow-{name}" aria-labelledby="workflow-{name}-title">
<h2 id="workflow-{name}-title">{name}
<span class="muted">on table {escape(status.table)}</span>{_paused_badge(status)}</h2>
<table>
<caption>Rows per status</caption>
<thead><tr>{heads}</tr></thead>
<tbody><tr>{counts}</tr></tbody>
</table>
<dl>{figures}</dl>
{_errors(status)}
{button}
</section>"""


def _paused_badge(status: WorkflowStatus) -> str:
    return ' <span class="paused" data-paused>paused</span>' if status.paused else ""


def _controls(status: WorkflowStatus) -> str:
    """The pause (since when, why) and the rate limit, as rows of the figures."""
    rows = ""
    if status.paused:
        reason = f" <span>— {escape(status.paused_reason)}</span>" if status.paused_reason else ""
        rows += (
            f'<dt>Paused</dt><dd data-figure="paused">since {_time(status.paused_at)}{reason}</dd>'
        )
    if status.rate_limit is not None:
        rows += f'<dt>Rate limit</dt><dd data-figure="rate-limit">{status.rate_limit:g}/s</dd>'
    return rows


def _errors(status: WorkflowStatus) -> str:
    if not status.errors:
        return '<p class="muted" data-errors="none">No errors.</p>'
    rows = "".join(
        "<tr data-error-group>"
        f'<td class="n">{group.rows}</td>'
        f"<td><code>{escape(group.message)}</code></td>"
        f"<td><code>{escape(group.example)}</code></td>"
        f"<td>{_time(group.last_seen)}</td>"
        "</tr>"
        for group in status.errors
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


def _time(value: datetime | None) -> str:
    if value is None:
        return "—"
    stamp = escape(value.isoformat(timespec="seconds"))
    return f'<time datetime="{stamp}">{stamp}</time>'
