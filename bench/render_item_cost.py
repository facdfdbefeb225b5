"""The "The realistic table" section of the benchmark page, from bench/item_cost.py's JSON
lines: the target's verdict per mode (the realistic table drains at ≥ 0.8 times the
narrow one's rate), what one item costs the server on each table, and how curate on the
realistic table compares with a dedicated queue table (PgQueuer's). For bench/render.py;
standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from render_format import DASH, TIMES, number, percent, ratio, table, targets_table

MEASURE = "item_cost"
RATIO_TARGET = 0.8
Line = Mapping[str, Any]

NAMES = {
    "narrow": "narrow `bench_items`",
    "realistic": "realistic `pages`",
    "pgqueuer": "PgQueuer's queue table",
}
MODES = {"per_item": "default", "batched": "batch 100"}
"""curate's modes, each with the PgQueuer configuration it is set beside (as on the
drain tables: one transaction per item or close to it; batches of outcomes)."""
HEADER = [
    "Table",
    "Mode",
    "Items/s",
    "vs narrow",
    "Statements",
    "Transactions",
    "Server CPU µs",
    "Statements' µs",
    "WAL bytes",
    "Heap records",
    "B-tree records",
    "Updates",
    "HOT",
    "Queueing: WAL bytes",
]


def _case(cases: Sequence[Line], table: str, mode: str) -> Line | None:
    return next((x for x in cases if x["table"] == table and x["mode"] == mode), None)


def _row(line: Line, narrow: Line | None) -> list[str]:
    versus = DASH
    if narrow is not None and line["table"] == "realistic":
        versus = ratio(line["items_per_s"] / narrow["items_per_s"])
    return [
        NAMES.get(line["table"], str(line["table"])),
        str(line["mode"]),
        number(line["items_per_s"]),
        versus,
        number(line["statements"], 3),
        number(line["transactions"], 3),
        number(line.get("server_cpu_us")),
        number(line.get("exec_us")),
        number(line["wal_bytes"]),
        number(line["heap_records"], 2),
        number(line["btree_records"], 2),
        number(line["updates"], 2),
        percent(line["hot_share"]),
        number(line.get("queue_wal_bytes")),
    ]


def pairs(cases: Sequence[Line]) -> list[tuple[str, str]]:
    """(table, mode) in the page's order: each curate mode on both tables, then PgQueuer's
    configuration beside it; cases of other modes after them."""
    order = [
        (table, mode)
        for curate, peer in MODES.items()
        for table, mode in (("narrow", curate), ("realistic", curate), ("pgqueuer", peer))
    ]
    found = [(str(x["table"]), str(x["mode"])) for x in cases]
    return [key for key in order if key in found] + [key for key in found if key not in order]


def cost_table(cases: Sequence[Line]) -> list[str]:
    rows = []
    for name, mode in pairs(cases):
        line = _case(cases, name, mode)
        assert line is not None
        rows.append(_row(line, _case(cases, "narrow", mode)))
    return table(HEADER, rows)


def ratio_targets(cases: Sequence[Line]) -> list[tuple[str, str, bool | None]]:
    """The realistic table's drain rate against the narrow one's, per curate mode."""
    rows: list[tuple[str, str, bool | None]] = []
    for mode in MODES:
        text = f"The realistic table drains at ≥ {RATIO_TARGET}{TIMES} the narrow one's, {mode}"
        narrow, realistic = _case(cases, "narrow", mode), _case(cases, "realistic", mode)
        if narrow is None or realistic is None:
            rows.append((text, "no data in this run", None))
            continue
        share = realistic["items_per_s"] / narrow["items_per_s"]
        figure = (
            f"{number(realistic['items_per_s'])} vs {number(narrow['items_per_s'])}/s"
            f" ({ratio(share)})"
        )
        rows.append((text, figure, share >= RATIO_TARGET))
    return rows


def _whole(line: Line) -> int:
    """WAL bytes of an item's whole life here: queueing it and draining it."""
    return int(line.get("queue_wal_bytes") or 0) + int(line["wal_bytes"])


def queue_table_comparison(cases: Sequence[Line]) -> list[str]:
    """curate on the realistic table against PgQueuer's queue table, per mode."""
    out = []
    for curate, peer in MODES.items():
        ours, theirs = _case(cases, "realistic", curate), _case(cases, "pgqueuer", peer)
        if ours is None or theirs is None:
            continue
        out.append(
            f"- {curate} against PgQueuer {peer}: {number(_whole(ours))} WAL bytes an item"
            f" (queueing and draining) against {number(_whole(theirs))}"
            f" ({ratio(_whole(ours) / _whole(theirs))}); draining alone"
            f" {number(ours['wal_bytes'])} against {number(theirs['wal_bytes'])}"
            f" ({ratio(ours['wal_bytes'] / theirs['wal_bytes'])}), B-tree records"
            f" {number(ours['btree_records'], 2)} against {number(theirs['btree_records'], 2)},"
            f" statements {number(ours['statements'], 2)} against"
            f" {number(theirs['statements'], 2)}; items/s {number(ours['items_per_s'])}"
            f" against {number(theirs['items_per_s'])}."
        )
    if not out:
        return []
    return [
        "curate on the realistic table against a dedicated queue table (PgQueuer's, whose"
        " figures are its queue and log tables' alone: an app that also keeps a status on"
        " its own row pays that row's update on top):",
        "",
        *out,
    ]


def _intro(line: Line) -> str:
    return (
        f"What one item costs the server: {number(line['items'])} items queued in a table of"
        f" {number(line['rows'])} rows, then drained by one worker with a no-op service, on a"
        " PostgreSQL started for the measure (fsync and autovacuum off, `pg_stat_statements`"
        " and `pg_walinspect`). *Narrow*: the drain benchmark's table, a primary key and the"
        " workflow's columns. *Realistic*: the soak's `pages`, a ~2 KB body, four secondary"
        " indexes and two workflows, so each claim and outcome rewrites the body and an"
        " entry in every index. *PgQueuer's queue table*: its own, drained as the drain"
        " benchmark runs it (default: batch 10; batch 100), when the run has PgQueuer. Per"
        " item: the worker's statements (BEGIN and COMMIT left out), the transactions"
        " committed, the CPU time of the server's processes during the drain and the"
        " statements' execution time (`total_exec_time`), the WAL bytes and heap and B-tree"
        " records of the whole server during the drain, the updates of the queued table and"
        " the share of them that were HOT;"
        " and the WAL of queueing the items beforehand (curate: an UPDATE of their status;"
        " PgQueuer: its bulk enqueue)."
    )


def section(lines: Sequence[Line]) -> list[str]:
    """The section's Markdown lines (bench/render.py adds the heading)."""
    cases = [line for line in lines if "table" in line and "error" not in line]
    if not cases:
        return ["*No figures: the step failed (see the failed steps below).*"]
    comparison = queue_table_comparison(cases)
    return [
        _intro(_case(cases, "narrow", "per_item") or cases[0]),
        "",
        *targets_table(16, ratio_targets(cases)),
        "",
        *cost_table(cases),
        *(["", *comparison] if comparison else []),
    ]
