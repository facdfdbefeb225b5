"""The "Many worker hosts" section of the benchmark page, from bench/hosts.py's JSON lines:
the target's verdict (every item once, at every host count), what the most hosts did
together, and the table of every count. For bench/render.py; standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from render_format import DASH, number, percent, ratio, table, targets_table

MEASURE = "hosts"
Line = Mapping[str, Any]

HEADER = [
    "Hosts",
    "Mode",
    "Items/s",
    "vs 1 host",
    "Seconds",
    "Each host's share",
    "Every item once",
    "Others' CPU",
]


def _others(line: Line) -> str:
    """The share of the machine's CPU that other jobs took during the drain."""
    cpu = line.get("cpu_seconds")
    if not cpu:
        return DASH
    return percent(cpu["others"] / (line["seconds"] * cpu["cores"]))


def _round(line: Line) -> tuple[str, int]:
    return str(line["mode"]), int(line.get("round", 1))


def _shares(line: Line) -> str:
    return " / ".join(percent(host["share"]) for host in line["per_host"])


def hosts(line: Line) -> str:
    """ "1 host", "4 hosts": a line's count."""
    count = int(line["hosts"])
    return f"{count} host{'' if count == 1 else 's'}"


def _once(line: Line) -> str:
    if line["done_once"]:
        return "yes"
    return (
        f"**no**: {line['once']:,} of {line['n']:,} Complete on one claim,"
        f" {line['ran_again']:,} run more than once, {line['not_ran']:,} never run"
    )


def _row(line: Line, single: float | None) -> list[str]:
    """One host count; a failed one says why instead of figures."""
    if "error" in line:
        return [str(line["hosts"]), str(line["mode"]), *[DASH] * 3, line["error"], DASH, DASH]
    rate = line["items_per_s"]
    once = _once(line) + (", timed out" if line.get("timed_out") else "")
    return [
        str(line["hosts"]),
        str(line["mode"]),
        number(rate),
        ratio(rate / single) if single else DASH,
        number(line["seconds"], 2),
        _shares(line),
        once,
        _others(line),
    ]


def hosts_table(cases: Sequence[Line]) -> list[str]:
    """By mode then host count (rounds of ``--repeat`` in order); throughput also as a
    ratio to the 1-host figure of the same mode and round."""
    ordered = sorted(cases, key=lambda line: (str(line["mode"]), line["hosts"]))
    single = {
        _round(line): line["items_per_s"]
        for line in ordered
        if line["hosts"] == 1 and "error" not in line
    }
    return table(HEADER, (_row(line, single.get(_round(line))) for line in ordered))


def once_target(cases: Sequence[Line]) -> tuple[str, str, bool | None]:
    """Every item Complete on one claim and run by exactly one host, at every count."""
    counts = [str(count) for count in sorted({int(line["hosts"]) for line in cases})]
    listed = " and ".join([", ".join(counts[:-1]), counts[-1]] if counts[:-1] else counts)
    text = f"Every item done exactly once, with {listed} host{'s' if counts != ['1'] else ''}"
    figure = "; ".join(
        f"{hosts(line)}: " + ("failed" if "error" in line else "yes" if line["done_once"] else "no")
        for line in sorted(cases, key=lambda line: line["hosts"])
    )
    met = all("error" not in line and line["done_once"] for line in cases)
    return text, figure, met


def most_hosts(cases: Sequence[Line]) -> str:
    """What the largest host count did together, against one host."""
    done = [line for line in cases if "error" not in line]
    if not done:
        return "No host count finished."
    top = max(done, key=lambda line: (line["hosts"], -int(line.get("round", 1))))
    single = next((x for x in done if x["hosts"] == 1 and _round(x) == _round(top)), None)
    versus = f", {ratio(top['items_per_s'] / single['items_per_s'])} one host's" if single else ""
    return (
        f"With {hosts(top)}: {number(top['items_per_s'])} items/s in all{versus};"
        f" each host's share of the items {_shares(top)}."
    )


def _intro(line: Line) -> str:
    settings = line.get("settings", {})
    return (
        f"{number(line['n'])} items queued at once, then one curate worker per host"
        f" ({line['mode']}, concurrency {settings.get('concurrency', '?')}, batch"
        f" {settings.get('batch_size', '?')}) released together; the clock runs until no"
        " item is Queued or Processing. Each host is a network namespace with a veth link"
        " of its own to one PostgreSQL started for the measure (fsync off, no delay added"
        f" to the links; all on this machine's {line.get('cpu_seconds', {}).get('cores', '?')}"
        " cores). *Every item once*: each item Complete on a single claim and run by exactly"
        " one host (the no-op service notes its host, copied into a side table after the"
        " drain). *Others' CPU*: the machine's CPU that other jobs took meanwhile."
    )


def section(lines: Sequence[Line]) -> list[str]:
    """The section's Markdown lines (bench/render.py adds the heading)."""
    cases = [line for line in lines if "hosts" in line]
    if not cases:
        return ["*No figures: the step failed (see the failed steps below).*"]
    first = next((line for line in cases if "error" not in line), cases[0])
    return [
        _intro(first) if "error" not in first else "Every host count failed.",
        "",
        *targets_table(16, [once_target(cases)]),
        "",
        most_hosts(cases),
        "",
        *hosts_table(cases),
    ]
