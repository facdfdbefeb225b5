"""How figures, ratios, tables and verdicts look on the benchmark page, for bench/render.py
and the modules of its sections (render_hosts.py, render_item_cost.py), so they all read
alike. Standard library only and importing nothing of the bench: any of them imports it.
"""

from __future__ import annotations

from collections.abc import Iterable

DASH = "\u2013"  # an en dash, for a figure the run does not have
TIMES = "\u00d7"  # the multiplication sign of a ratio
VERDICTS = {True: "**met**", False: "**not met**", None: "not measured"}
"""A target's verdict: met, not met, or None when the run has no data for it."""


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


def ratio(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}{TIMES}"


def percent(share: float | None) -> str:
    return DASH if share is None else f"{share * 100:.0f} %"


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def targets_table(issue: int, rows: Iterable[tuple[str, str, bool | None]]) -> list[str]:
    """Targets as (what, this run's figure, met) rows, each with its verdict."""
    shown = ([text, figure, VERDICTS[met]] for text, figure, met in rows)
    return table([f"Target (issue {issue})", "This run", "Verdict"], shown)
