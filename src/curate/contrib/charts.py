"""Charts as inline SVG drawn on the server: no script, no front-end build, no assets.

`bar_chart` draws counts per time bucket (completions, failures), `line_chart` a level
sampled over time (queue depth), with a gap where there is no sample. Both are pure
functions from a series to an ``<svg role="img">`` whose ``<title>`` names the chart and
whose ``<desc>`` says its figures in words (for screen readers, and for tests); each bar
or point has a tooltip. Axis labels: the y-axis's 0 and top, the x-axis's first and last
times (UTC). Every text is escaped, so a caller may pass what the database holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

Point = tuple[datetime, float | None]
"""A bucket's start and its value; None: nothing known (no sample)."""

WIDTH, HEIGHT = 320, 140
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 6, 8, 20  # room for the axis labels
_PLOT_W, _PLOT_H = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM


def bar_chart(chart_id: str, title: str, points: Sequence[Point], *, color: str) -> str:
    """One bar per bucket (a None value counts as 0); ``chart_id`` must be unique on the
    page (the title and description are referenced by id)."""
    values = [value or 0 for _, value in points]
    top = _axis_top(max(values, default=0))
    slot = _PLOT_W / max(len(points), 1)
    bars = "".join(
        f'<rect x="{_LEFT + i * slot + slot * 0.1:.1f}" y="{_y(value, top):.1f}"'
        f' width="{slot * 0.8:.1f}" height="{_TOP + _PLOT_H - _y(value, top):.1f}"'
        f' data-value="{_number(value)}"><title>{_label(at)}: {_number(value)}</title></rect>'
        for i, ((at, _), value) in enumerate(zip(points, values, strict=True))
    )
    desc = (
        f"{_number(sum(values))} in total over {len(points)} buckets, at most"
        f" {_number(max(values, default=0))} in one{_span(points)}."
    )
    return _svg(chart_id, title, desc, points, top, f'<g fill="{escape(color)}">{bars}</g>')


def line_chart(chart_id: str, title: str, points: Sequence[Point], *, color: str) -> str:
    """A line through the known values, broken where a value is None; a point with no
    neighbour is a dot."""
    known = [value for _, value in points if value is not None]
    top = _axis_top(max(known, default=0))
    slot = _PLOT_W / max(len(points), 1)
    runs: list[list[tuple[float, float]]] = [[]]
    dots = []
    for i, (at, value) in enumerate(points):
        if value is None:
            runs.append([])
            continue
        x, y = _LEFT + (i + 0.5) * slot, _y(value, top)
        runs[-1].append((x, y))
        dots.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.6" data-value="{_number(value)}">'
            f"<title>{_label(at)}: {_number(value)}</title></circle>"
        )
    paths = "".join(
        '<path d="M' + " L".join(f"{x:.1f} {y:.1f}" for x, y in run) + '"/>'
        for run in runs
        if len(run) > 1
    )
    if known:
        desc = (
            f"Latest {_number(known[-1])}, highest {_number(max(known))},"
            f" sampled in {len(known)} of {len(points)} buckets{_span(points)}."
        )
    else:
        desc = f"No samples in {len(points)} buckets{_span(points)}."
    color = escape(color)
    body = (
        f'<g fill="none" stroke="{color}" stroke-width="1.5">{paths}</g>'
        f'<g fill="{color}">{"".join(dots)}</g>'
    )
    return _svg(chart_id, title, desc, points, top, body)


def _svg(
    chart_id: str, title: str, desc: str, points: Sequence[Point], top: float, body: str
) -> str:
    """The frame: title, description, axes and their labels around ``body``."""
    ident = escape(chart_id)
    bottom = _TOP + _PLOT_H
    first = _label(points[0][0]) if points else ""
    last = _label(points[-1][0]) if points else ""
    axes = (
        f'<path d="M{_LEFT} {_TOP} V{bottom} H{WIDTH - _RIGHT}" fill="none" stroke="#777"/>'
        f'<g font-size="10" fill="#444">'
        f'<text x="{_LEFT - 4}" y="{_TOP + 8}" text-anchor="end">{_number(top)}</text>'
        f'<text x="{_LEFT - 4}" y="{bottom}" text-anchor="end">0</text>'
        f'<text x="{_LEFT}" y="{HEIGHT - 4}">{first}</text>'
        f'<text x="{WIDTH - _RIGHT}" y="{HEIGHT - 4}" text-anchor="end">{last} UTC</text>'
        "</g>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" id="{ident}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' aria-labelledby="{ident}-title {ident}-desc">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(desc)}</desc>{axes}{body}</svg>'
    )


def _axis_top(peak: float) -> float:
    """The y-axis's top: the peak, at least 1 (an empty chart still has a scale)."""
    return max(peak, 1)


def _y(value: float, top: float) -> float:
    return _TOP + _PLOT_H * (1 - value / top)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _label(at: datetime) -> str:
    """``at`` as HH:MM in UTC, escaped for the page."""
    return escape(at.astimezone(UTC).strftime("%H:%M"))


def _span(points: Sequence[Point]) -> str:
    """Where the chart's buckets start and end, for its description (escaped later)."""
    if not points:
        return ""
    first, last = (at.astimezone(UTC).strftime("%H:%M") for at in (points[0][0], points[-1][0]))
    return f" from {first} to {last} UTC"
