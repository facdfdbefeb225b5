"""The "The realistic table" section of the benchmark page, from bench/item_cost.py's JSON
lines: the target's verdict per mode (the realistic table drains at ≥ 0.8 times the
narrow one's rate), what one item costs the server on each table, what curate's attempt
history adds to it (each curate case with the history off and on), and how curate on the
realistic table compares with a dedicated queue table (PgQueuer's). For bench/render.py;
standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from render_format import DASH, TIMES, number, percent, ratio, table, targets_table

MEASURE = "item_cost"
RATIO_TARGET = 0.8
Line = Mapping[str, Any]
History = bool | None
"""A line's attempt history: on, off, or None (PgQueuer's, or a run from before it)."""
DEFAULT_HISTORY = False
"""The lines set beside PgQueuer's: curate's default (``CURATE_ATTEMPT_HISTORY=failures``)
records no completion, so on a drain where every item completes it is the history-off
line."""

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
    "History",
    "Items/s",
    "vs narrow",
    "Statements",
    "Transactions",
    "Server CPU µs",
    "Worker CPU µs",
    "Statements' µs",
    "WAL bytes",
    "Heap records",
    "B-tree records",
    "Updates",
    "HOT",
    "Queueing: WAL bytes",
]


Key = tuple[str, str, History]
"""A case: (table, mode, history)."""


def _key(line: Line) -> Key:
    return str(line["table"]), str(line["mode"]), line.get("history")


def _case(cases: Sequence[Line], table: str, mode: str, history: History = None) -> Line | None:
    return next((x for x in cases if _key(x) == (table, mode, history)), None)


def _histories(cases: Sequence[Line], table: str, mode: str) -> list[History]:
    """The history settings of the run's cases of ``table`` in ``mode``: off before on."""
    found = {x.get("history") for x in cases if (x["table"], x["mode"]) == (table, mode)}
    return sorted(found, key=lambda h: -1 if h is None else int(h))


def _history(history: History) -> str:
    return DASH if history is None else ("on" if history else "off")


def _row(line: Line, narrow: Line | None) -> list[str]:
    versus = DASH
    if narrow is not None and line["table"] == "realistic":
        versus = ratio(line["items_per_s"] / narrow["items_per_s"])
    return [
        NAMES.get(line["table"], str(line["table"])),
        str(line["mode"]),
        _history(line.get("history")),
        number(line["items_per_s"]),
        versus,
        number(line["statements"], 3),
        number(line["transactions"], 3),
        number(line.get("server_cpu_us")),
        number(line.get("worker_cpu_us")),
        number(line.get("exec_us")),
        number(line["wal_bytes"]),
        number(line["heap_records"], 2),
        number(line["btree_records"], 2),
        number(line["updates"], 2),
        percent(line["hot_share"]),
        number(line.get("queue_wal_bytes")),
    ]


def pairs(cases: Sequence[Line]) -> list[Key]:
    """(table, mode, history) in the page's order: each curate mode on both tables (history
    off, then on), then PgQueuer's configuration beside it; cases of other modes after them."""
    order = [
        (table, mode, history)
        for curate, peer in MODES.items()
        for table, mode in (("narrow", curate), ("realistic", curate), ("pgqueuer", peer))
        for history in _histories(cases, table, mode)
    ]
    found = [_key(x) for x in cases]
    return [key for key in order if key in found] + [key for key in found if key not in order]


def cost_table(cases: Sequence[Line]) -> list[str]:
    rows = []
    for name, mode, history in pairs(cases):
        line = _case(cases, name, mode, history)
        assert line is not None
        rows.append(_row(line, _case(cases, "narrow", mode, history)))
    return table(HEADER, rows)


def ratio_targets(cases: Sequence[Line]) -> list[tuple[str, str, bool | None]]:
    """The realistic table's drain rate against the narrow one's, per curate mode and
    history setting."""
    rows: list[tuple[str, str, bool | None]] = []
    for mode in MODES:
        for history in _histories(cases, "realistic", mode) or [None]:
            rows.append(_ratio_target(cases, mode, history))
    return rows


def _ratio_target(
    cases: Sequence[Line], mode: str, history: History
) -> tuple[str, str, bool | None]:
    shown = "" if history is None else f", history {_history(history)}"
    text = f"The realistic table drains at ≥ {RATIO_TARGET}{TIMES} the narrow one's, {mode}{shown}"
    narrow = _case(cases, "narrow", mode, history)
    realistic = _case(cases, "realistic", mode, history)
    if narrow is None or realistic is None:
        return text, "no data in this run", None
    share = realistic["items_per_s"] / narrow["items_per_s"]
    figure = (
        f"{number(realistic['items_per_s'])} vs {number(narrow['items_per_s'])}/s ({ratio(share)})"
    )
    return text, figure, share >= RATIO_TARGET


def _increase(figure: str, digits: int = 0) -> Callable[[Line, Line], str]:
    """A cell of the history table: ``figure`` off → on, and by how much it grew."""

    def cell(off: Line, on: Line) -> str:
        before, after = off.get(figure), on.get(figure)
        if before is None or after is None:
            return DASH
        return f"{number(before, digits)} → {number(after, digits)} ({after - before:+,.{digits}f})"

    return cell


def _rate(off: Line, on: Line) -> str:
    return (
        f"{number(off['items_per_s'])} → {number(on['items_per_s'])}"
        f" ({ratio(on['items_per_s'] / off['items_per_s'])})"
    )


HISTORY_COLUMNS: dict[str, Callable[[Line, Line], str]] = {
    "Statements": _increase("statements", 3),
    "Transactions": _increase("transactions", 3),
    "WAL bytes": _increase("wal_bytes"),
    "Heap records": _increase("heap_records", 2),
    "B-tree records": _increase("btree_records", 2),
    "Server CPU µs": _increase("server_cpu_us", 1),
    "Worker CPU µs": _increase("worker_cpu_us", 1),
    "Statements' µs": _increase("exec_us", 1),
    "Items/s": _rate,
}
"""The history table's figures per item, each history off → on (the increase)."""


def history_table(cases: Sequence[Line]) -> list[str]:
    """Each curate case with the attempt history off and on, side by side: what recording
    the attempt adds to an item."""
    rows = []
    for name, mode, history in pairs(cases):
        off = _case(cases, name, mode, False)
        on = _case(cases, name, mode, True)
        if history is True and off is not None and on is not None:
            cells = [render(off, on) for render in HISTORY_COLUMNS.values()]
            rows.append([NAMES.get(name, name), mode, *cells])
    if not rows:
        return []
    return [
        "What the attempt history adds to an item (`curate_attempts`, recorded by each"
        " outcome's own statement): the same case with the history off"
        " (`CURATE_ATTEMPT_HISTORY=off`, no `curate_attempts`) → on (`=all`: completions"
        " too; the default, `failures`, records none), per item, the"
        " increase in brackets (items/s: on ÷ off).",
        "",
        *table(["Table", "Mode", *HISTORY_COLUMNS], rows),
    ]


def _whole(line: Line) -> int:
    """WAL bytes of an item's whole life here: queueing it and draining it."""
    return int(line.get("queue_wal_bytes") or 0) + int(line["wal_bytes"])


def queue_table_comparison(cases: Sequence[Line]) -> list[str]:
    """curate on the realistic table against PgQueuer's queue table, per mode."""
    out = []
    for curate, peer in MODES.items():
        histories = _histories(cases, "realistic", curate)
        history = DEFAULT_HISTORY if DEFAULT_HISTORY in histories else next(iter(histories), None)
        ours = _case(cases, "realistic", curate, history)
        theirs = _case(cases, "pgqueuer", peer)
        if ours is None or theirs is None:
            continue
        shown = "" if history is None else f" (history {_history(history)})"
        out.append(
            f"- {curate}{shown} against PgQueuer {peer}: {number(_whole(ours))} WAL bytes an item"
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
        " committed, the CPU time of the server's processes and of the worker during the"
        " drain and the statements' execution time (`total_exec_time`), the WAL bytes and"
        " heap and B-tree"
        " records of the whole server during the drain (each case starts with a checkpoint"
        " and none falls inside it, so no full-page image is there by chance), the updates"
        " of the queued table and the share of them that were HOT;"
        " and the WAL of queueing the items beforehand (curate: an UPDATE of their status;"
        " PgQueuer: its bulk enqueue). *History*: curate's cases each with the attempt"
        " history off (`CURATE_ATTEMPT_HISTORY=off`, no `curate_attempts`) and on (`=all`: each"
        " outcome's statement also inserts the attempt into `curate_attempts`, a primary"
        " key and two indexes; checked after the drain: one attempt per item)."
    )


def section(lines: Sequence[Line]) -> list[str]:
    """The section's Markdown lines (bench/render.py adds the heading)."""
    cases = [line for line in lines if "table" in line and "error" not in line]
    if not cases:
        return ["*No figures: the step failed (see the failed steps below).*"]
    comparison = queue_table_comparison(cases)
    history = history_table(cases)
    return [
        _intro(cases[0]),
        "",
        *targets_table(16, ratio_targets(cases)),
        "",
        *cost_table(cases),
        *(["", *history] if history else []),
        *(["", *comparison] if comparison else []),
    ]
