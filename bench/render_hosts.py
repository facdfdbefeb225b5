"""The many-hosts table (bench/hosts.py's JSON lines) as Markdown, for bench/render.py.

Standard library only and importing nothing of the bench, so render.py can import it at
the top without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DASH = "\u2013"  # an en dash, for a figure the line does not have
TIMES = "\u00d7"  # the multiplication sign of a ratio

HEADER = (
    "Hosts",
    "Mode",
    "Items/s",
    "vs 1 host",
    "Seconds",
    "Each host's share",
    "Every item once",
    "Others' CPU",
)


def _others(line: Mapping[str, Any]) -> str:
    """The share of the machine's CPU that other jobs took during the drain."""
    cpu = line.get("cpu_seconds")
    if not cpu:
        return DASH
    return f"{cpu['others'] / (line['seconds'] * cpu['cores']) * 100:.0f} %"


def _round(line: Mapping[str, Any]) -> tuple[str, int]:
    return str(line["mode"]), int(line.get("round", 1))


def _share(host: Mapping[str, Any]) -> str:
    return f"{host['share'] * 100:.0f} %"


def _not_once(line: Mapping[str, Any]) -> str:
    return (
        f"**no**: {line['once']:,} of {line['n']:,} Complete on one claim,"
        f" {line['ran_again']:,} run more than once, {line['not_ran']:,} never run"
    )


def _row(line: Mapping[str, Any], single: float | None) -> list[str]:
    """One host count; a failed one says why instead of figures."""
    if "error" in line:
        return [str(line["hosts"]), str(line["mode"]), *[DASH] * 3, line["error"], DASH, DASH]
    rate = line["items_per_s"]
    versus = f"{rate / single:.2f}{TIMES}" if single else DASH
    once = "yes" if line["done_once"] else _not_once(line)
    if line.get("timed_out"):
        once += ", timed out"
    shares = " / ".join(_share(host) for host in line["per_host"])
    return [
        str(line["hosts"]),
        str(line["mode"]),
        f"{rate:,.0f}",
        versus,
        f"{line['seconds']:.2f}",
        shares,
        once,
        _others(line),
    ]


def render_hosts(lines: Iterable[Mapping[str, Any]]) -> str:
    """A Markdown table of the ``"measure": "hosts"`` lines (others are ignored), by mode
    then host count (rounds of ``--repeat`` in order); throughput also as a ratio to the
    1-host figure of the same mode and round."""
    hosts = [line for line in lines if line.get("measure") == "hosts"]
    hosts.sort(key=lambda line: (str(line["mode"]), line["hosts"]))
    single = {
        _round(line): line["items_per_s"]
        for line in hosts
        if line["hosts"] == 1 and "error" not in line
    }
    rows = [_row(line, single.get(_round(line))) for line in hosts]
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out) + "\n"
