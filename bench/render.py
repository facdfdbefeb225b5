"""Render a benchmark run: its JSON lines become docs/benchmarks.md and docs/benchmarks.png
(and docs/benchmarks-soak.png when the run has a soak).

    python bench/render.py bench/results/<timestamp>.jsonl [--docs-dir docs] [--no-plot]

The Markdown needs only the standard library; the plot needs matplotlib (bench/.venv-peers has
it) and is left out, with a note in the page, when it is missing. Every figure, ratio and
target verdict is computed from the results file; nothing in the page is written by hand
except the optional notes file, copied under "Where the time goes".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import render_hosts
import render_item_cost
import render_latency
from render_format import DASH, TIMES, VERDICTS, number, ratio, table, targets_table

ROOT = Path(__file__).resolve().parent.parent
PAGE = "benchmarks.md"
PLOT = "benchmarks.png"
SOAK_PLOT = "benchmarks-soak.png"

CURATE = "curate"
PEER_ORDER = ("procrastinate", "pgqueuer", "oban", "naive")
# From the measurements (2 vCPUs, PostgreSQL 15): raw asyncpg, one
# `UPDATE … WHERE id = ANY($1)` per batch of 1,000 rows. Not re-measured by the run.
RAW_SQL_CEILING = 28_000
CLAIM_FLAT_FACTOR = 1.5
PICKUP_P50_TARGET_MS = 10.0
# The soak's targets (issue 16); bench/soak.py judges them, these only label and draw them.
SOAK_KEEP_UP_SECONDS = 10
SOAK_CLAIM_P99_MS = 5.0
SOAK_GROWTH = 1.3

Line = dict[str, Any]


# --- reading ------------------------------------------------------------------------------


def read_lines(path: Path) -> list[Line]:
    """The JSON objects of a results file, in order; blank and broken lines are skipped."""
    lines = []
    for raw in path.read_text().splitlines():
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


@dataclass
class Run:
    """A results file split by measure."""

    meta: Line
    end: Line
    drains: list[Line]
    pickups: list[Line]
    claims: list[Line]
    problems: list[Line]
    soak_minutes: list[Line]
    soak_summaries: list[Line]
    lines: list[Line]
    """All of them, in order (the own-server sections take theirs by measure)."""

    @classmethod
    def load(cls, path: Path) -> Run:
        lines = read_lines(path)

        def measure(name: str) -> list[Line]:
            return [line for line in lines if line.get("measure") == name]

        return cls(
            meta=next(iter(measure("meta")), {}),
            end=next(iter(measure("end")), {}),
            drains=measure("drain"),
            pickups=measure("pickup"),
            claims=measure("claim_cost"),
            problems=[line for line in lines if "error" in line],
            soak_minutes=measure("soak"),
            soak_summaries=measure("soak_summary"),
            lines=lines,
        )


def ok(line: Line) -> bool:
    return "error" not in line


def _system_rank(system: str) -> int:
    order = (CURATE, *PEER_ORDER)
    return order.index(system) if system in order else len(order)


def config_label(line: Line) -> str:
    """What distinguishes a drain line of one system from another: the config run.py set."""
    return str(line.get("config") or line.get("mode") or "default")


# --- formatting ---------------------------------------------------------------------------


def error_text(line: Line) -> str:
    text = " ".join(str(line.get("error", "")).split())
    return (text[:117] + "…") if len(text) > 120 else text


# --- drain throughput ---------------------------------------------------------------------


def drain_rate(line: Line) -> float | None:
    value = line.get("per_second")
    return float(value) if ok(line) and value is not None else None


def best_peer(lines: Iterable[Line], key: Callable[[Line], float | None], *, low: bool) -> Line:
    """The peer line with the best figure (lowest when ``low``), or {} if none has one."""
    candidates = [line for line in lines if line.get("system") != CURATE and key(line) is not None]
    if not candidates:
        return {}
    chooser = min if low else max
    return chooser(candidates, key=lambda line: key(line) or 0.0)


def drain_note(line: Line) -> str:
    if not ok(line):
        return f"failed: {error_text(line)}"
    if line.get("timed_out"):
        return (
            f"stopped at {number(line.get('seconds'), 0)} s: {number(line.get('completed'))} done"
        )
    return ""


def drain_order(run: Run) -> Callable[[Line], tuple[int, int, int]]:
    """Sort key for drain lines: system, then configs in the order the run ran them."""
    configs: dict[str, int] = {}
    for line in run.drains:
        configs.setdefault(config_label(line), len(configs))
    return lambda x: (
        _system_rank(str(x.get("system"))),
        configs[config_label(x)],
        int(x.get("workers") or 1),
    )


def drain_sections(run: Run) -> list[str]:
    out: list[str] = []
    sizes = sorted({int(line["n"]) for line in run.drains if line.get("n")})
    for n in sizes:
        lines = sorted((line for line in run.drains if line.get("n") == n), key=drain_order(run))
        best = best_peer(lines, drain_rate, low=False)
        best_rate = drain_rate(best) if best else None
        rows = []
        for line in lines:
            rate = drain_rate(line)
            versus = ""
            if line.get("system") == CURATE and rate and best_rate:
                versus = ratio(rate / best_rate)
            elif line is best:
                versus = "best peer"
            rows.append(
                [
                    str(line.get("system")),
                    config_label(line),
                    str(line.get("workers", DASH)),
                    number(rate),
                    number(line.get("seconds"), 2) if ok(line) else DASH,
                    versus,
                    drain_note(line),
                ]
            )
        out += [f"### N = {n:,}", ""]
        out += table(
            ["System", "Config", "Workers", "Items/s", "Seconds", "curate / best peer", "Note"],
            rows,
        )
        out.append("")
    return out


# --- pick-up latency ----------------------------------------------------------------------


def p50(line: Line) -> float | None:
    return float(line["p50_ms"]) if ok(line) and line.get("p50_ms") is not None else None


def p95(line: Line) -> float | None:
    return float(line["p95_ms"]) if ok(line) and line.get("p95_ms") is not None else None


def pickup_section(run: Run) -> list[str]:
    rows = []
    for notify in ("on", "off"):
        lines = sorted(
            (line for line in run.pickups if line.get("notify") == notify),
            key=lambda x: _system_rank(str(x.get("system"))),
        )
        best50 = best_peer(lines, p50, low=True)
        best95 = best_peer(lines, p95, low=True)
        for line in lines:
            versus50 = "best peer" if line is best50 else ""
            versus95 = "best peer" if line is best95 else ""
            if line.get("system") == CURATE:
                versus50 = _inverse_ratio(p50(best50) if best50 else None, p50(line))
                versus95 = _inverse_ratio(p95(best95) if best95 else None, p95(line))
            rows.append(
                [
                    str(line.get("system")),
                    notify,
                    _count(line),
                    number(p50(line), 1),
                    number(p95(line), 1),
                    number(line.get("max_ms"), 1) if ok(line) else DASH,
                    versus50,
                    versus95,
                    "" if ok(line) else f"failed: {error_text(line)}",
                ]
            )
    header = ["System", "NOTIFY", "Rows started", "p50 ms", "p95 ms", "max ms"]
    header += ["best peer / curate (p50)", "(p95)", "Note"]
    return table(header, rows)


def _count(line: Line) -> str:
    """Rows whose start was seen, of those queued when the runner says."""
    if not ok(line):
        return DASH
    seen, queued = number(line.get("count")), line.get("enqueued")
    return seen if queued is None else f"{seen} of {number(queued)}"


def _inverse_ratio(peer: float | None, ours: float | None) -> str:
    return ratio(peer / ours) if peer is not None and ours else DASH


# --- claim cost and memory ----------------------------------------------------------------


def claim_base(run: Run) -> float | None:
    base = [p50(line) for line in run.claims if line.get("rows") == min_rows(run)]
    return base[0] if base else None


def min_rows(run: Run) -> int | None:
    sizes = [int(line["rows"]) for line in run.claims if ok(line) and line.get("rows")]
    return min(sizes) if sizes else None


def claim_section(run: Run) -> list[str]:
    base = claim_base(run)
    rows = []
    for line in sorted(run.claims, key=lambda x: int(x.get("rows") or 0)):
        figure = p50(line)
        versus = ratio(figure / base) if figure is not None and base else DASH
        rows.append(
            [
                number(line.get("rows")),
                number(line.get("queued")),
                number(figure, 2),
                number(p95(line), 2),
                versus,
                "" if ok(line) else f"failed: {error_text(line)}",
            ]
        )
    base_rows = number(min_rows(run))
    header = ["Table rows", "Queued", "p50 ms", "p95 ms", f"p50 vs {base_rows} rows", "Note"]
    return table(header, rows)


def memory_section(run: Run) -> list[str]:
    """Peak RSS of the largest drain each system/config/workers ran."""
    largest: dict[tuple[str, str, int], Line] = {}
    for line in run.drains:
        if not ok(line) or line.get("peak_rss_mb") is None:
            continue
        key = (str(line.get("system")), config_label(line), int(line.get("workers") or 1))
        if key not in largest or int(line.get("n") or 0) > int(largest[key].get("n") or 0):
            largest[key] = line
    rows = [
        [system, config, str(workers), number(line.get("n")), number(line["peak_rss_mb"], 1)]
        for (system, config, workers), line in sorted(
            largest.items(), key=lambda item: drain_order(run)(item[1])
        )
    ]
    return table(["System", "Config", "Workers", "N", "Peak RSS MB"], rows)


MEMORY_BOUND = 1.2
"""Issue 16: a curate worker's peak RSS within this factor of the lightest peer's."""


def memory_target(run: Run) -> list[str]:
    """The heaviest curate worker of any drain against the lightest peer's heaviest."""
    heaviest: dict[str, float] = {}
    for line in run.drains:
        if ok(line) and line.get("peak_rss_mb") is not None:
            system = str(line.get("system"))
            heaviest[system] = max(heaviest.get(system, 0.0), float(line["peak_rss_mb"]))
    ours = heaviest.pop(CURATE, None)
    peers = {system: mb for system, mb in heaviest.items() if system != "naive"}
    if ours is None or not peers:
        return targets_table(16, [(_memory_text(), DASH, None)])
    lightest = min(peers, key=peers.__getitem__)
    figure = (
        f"{number(ours, 1)} MB against {lightest}'s {number(peers[lightest], 1)} MB:"
        f" {ratio(ours / peers[lightest])}"
    )
    return targets_table(16, [(_memory_text(), figure, ours <= MEMORY_BOUND * peers[lightest])])


def _memory_text() -> str:
    return f"curate's worker peak RSS ≤ {MEMORY_BOUND:g}{TIMES} the lightest peer's"


# --- targets ------------------------------------------------------------------------------


@dataclass
class Target:
    text: str
    figure: str
    met: bool | None  # None: the run has no data for it


def _drain(run: Run, system: str, config: str, n: int, workers: int = 1) -> float | None:
    for line in run.drains:
        if (
            line.get("system") == system
            and config_label(line) == config
            and line.get("n") == n
            and int(line.get("workers") or 1) == workers
        ):
            return drain_rate(line)
    return None


def _best_config(run: Run, system: str, n: int) -> tuple[str, float] | None:
    rates = [
        (config_label(line), rate)
        for line in run.drains
        if line.get("system") == system
        and line.get("n") == n
        and (rate := drain_rate(line)) is not None
    ]
    return max(rates, key=lambda item: item[1]) if rates else None


def _combine(parts: list[tuple[str, bool]]) -> tuple[str, bool | None]:
    if not parts:
        return "no data in this run", None
    return "; ".join(text for text, _ in parts), all(met for _, met in parts)


def _curate_sizes(run: Run) -> list[int]:
    return sorted({int(x["n"]) for x in run.drains if x.get("system") == CURATE and x.get("n")})


def per_item_target(run: Run) -> Target:
    parts = []
    for n in _curate_sizes(run):
        ours, theirs = _drain(run, CURATE, "per_item", n), _drain(run, "pgqueuer", "default", n)
        if ours is not None and theirs is not None:
            parts.append(
                (
                    f"N = {n:,}: {number(ours)} vs {number(theirs)}/s ({ratio(ours / theirs)})",
                    ours >= theirs,
                )
            )
    figure, met = _combine(parts)
    return Target("Per-item transactions (1 worker) ≥ PgQueuer default", figure, met)


def batched_target(run: Run) -> Target:
    parts = []
    for n in _curate_sizes(run):
        ours, best = _drain(run, CURATE, "batched", n), _best_config(run, "pgqueuer", n)
        if ours is None or best is None:
            continue
        config, theirs = best
        half = RAW_SQL_CEILING / 2
        parts.append(
            (
                f"N = {n:,}: {number(ours)} vs PgQueuer {config} {number(theirs)}/s"
                f" ({ratio(ours / theirs)}), half ceiling {number(half)}/s",
                ours > theirs and ours > half,
            )
        )
    figure, met = _combine(parts)
    text = (
        "Batched outcomes (1 worker) > PgQueuer's best config and"
        f" > half the raw-SQL ceiling ({RAW_SQL_CEILING:,}/s)"
    )
    return Target(text, figure, met)


def pickup_target(run: Run) -> Target:
    figures = [
        p50(line)
        for line in run.pickups
        if line.get("system") == CURATE and line.get("notify") == "on"
    ]
    value = next((f for f in figures if f is not None), None)
    if value is None:
        return Target("Pick-up p50 ≤ 10 ms with NOTIFY", "no data in this run", None)
    return Target(
        f"Pick-up p50 ≤ {PICKUP_P50_TARGET_MS:g} ms with NOTIFY",
        f"{value:.1f} ms",
        value <= PICKUP_P50_TARGET_MS,
    )


def claim_target(run: Run) -> Target:
    text = f"Claim p50 at 10,000,000 rows ≤ {CLAIM_FLAT_FACTOR}{TIMES} the 10,000-row figure"
    by_rows = {int(line["rows"]): p50(line) for line in run.claims if line.get("rows")}
    small, large = by_rows.get(10_000), by_rows.get(10_000_000)
    if small is None or large is None or not small:
        return Target(text, "no data in this run", None)
    return Target(
        text,
        f"{large:.2f} vs {small:.2f} ms ({ratio(large / small)})",
        large <= CLAIM_FLAT_FACTOR * small,
    )


def targets(run: Run) -> list[Target]:
    return [per_item_target(run), batched_target(run), pickup_target(run), claim_target(run)]


def targets_section(run: Run) -> list[str]:
    return targets_table(8, ((t.text, t.figure, t.met) for t in targets(run)))


# --- the soak -----------------------------------------------------------------------------

SOAK_SYSTEMS = (CURATE, "pgqueuer")
SOAK_TARGETS = (
    (
        "keeps_up",
        "Keeps up with the producer every minute (backlog at its end"
        f" ≤ {SOAK_KEEP_UP_SECONDS} s of production)",
    ),
    ("claim_p99", f"Claim p99 ≤ {SOAK_CLAIM_P99_MS:g} ms every minute"),
    ("growth", f"Table + index bytes at the end ≤ {SOAK_GROWTH}{TIMES} at minute 5"),
)


def soak_summary(run: Run, system: str) -> Line:
    return next((x for x in run.soak_summaries if x.get("system") == system), {})


def soak_lines(run: Run, system: str) -> list[Line]:
    return sorted(
        (x for x in run.soak_minutes if x.get("system") == system), key=lambda x: x["minute"]
    )


def megabytes(value: float | None) -> float | None:
    return None if value is None else value / 2**20


def soak_figure(name: str, target: Line) -> str:
    """What a target's verdict rests on, from the summary line's numbers."""
    if not target:
        return DASH
    if name == "keeps_up":
        return (
            f"largest backlog {number(target.get('worst_backlog'))} (minute"
            f" {target.get('worst_minute')}), bound {number(target.get('bound'))}"
        )
    if name == "claim_p99":
        worst = number(target.get("worst_p99_ms"), 2)
        return f"worst p99 {worst} ms (minute {target.get('worst_minute')})"
    return (
        f"{ratio(target.get('ratio'))}: {number(megabytes(target.get('end_bytes')))} vs"
        f" {number(megabytes(target.get('base_bytes')))} MB at minute {target.get('base_minute')}"
    )


def soak_targets(run: Run) -> list[str]:
    curate, peer = soak_summary(run, CURATE), soak_summary(run, "pgqueuer")
    rows = []
    for name, text in SOAK_TARGETS:
        ours, theirs = (
            curate.get("targets", {}).get(name, {}),
            peer.get("targets", {}).get(name, {}),
        )
        verdict = VERDICTS[ours.get("met")] if ours else VERDICTS[None]
        their_verdict = (": met" if theirs.get("met") else ": not met") if theirs else ""
        rows.append(
            [
                text,
                soak_figure(name, ours),
                verdict,
                f"{soak_figure(name, theirs)}{their_verdict}",
            ]
        )
    return table(["Target (issue 16)", "curate", "Verdict", "PgQueuer, same rule"], rows)


SOAK_SERVERS = {
    "own": "a stock PostgreSQL of the soak's own (initdb's defaults, fsync on)",
    "dsn": "the run's `--dsn`",
}


def soak_intro(run: Run) -> str:
    ours = soak_summary(run, CURATE)
    setup = ours.get("setup", {})
    if not ours or "error" in ours:
        return "The soak of curate did not finish (see the failed steps below)."
    interval = ours.get("minute_seconds", 60)
    length = "minutes" if interval == 60 else f"intervals of {interval:g} s"
    peer = soak_summary(run, "pgqueuer")
    tail = (
        " PgQueuer ran after it at the same producer rate for as long; its jobs are rows of"
        " its own table with a page id as payload (no pages table), and its figures are its"
        " queue table's."
        if peer and "error" not in peer
        else ""
    )
    return (
        f"{number(ours.get('rows'))} rows of `pages` (a 2 KB body, stored in"
        f" {number(setup.get('body_stored_bytes'))} bytes, four secondary indexes) and two"
        " curate workflows on the same rows, `fetch` then `parse` (queued by fetch's service"
        " in its own transaction). First the workers drained"
        f" {number(ours.get('calibration_rows'))} rows queued at once, through both stages,"
        f" at {number(ours.get('drain_rate'))} rows/s; then a producer queued"
        f" {number(ours.get('rate'))} rows/s ({number(100 * (ours.get('share') or 0))} % of"
        f" that), a batch every 100 ms, for {ours.get('minutes')} {length}."
        f" Server: {SOAK_SERVERS.get(ours.get('server', 'dsn'))}; autovacuum:"
        f" {ours.get('autovacuum')}.{tail} Claim times are every claim statement"
        " of the minute, as the worker timed it (curate's run observer; PgQueuer's `dequeue`)."
        " Table bytes are `pg_table_size` (heap, TOAST and maps), index bytes"
        " `pg_indexes_size`; WAL is the whole server's; RSS is the worker's peak so far."
    )


def soak_minutes_table(run: Run, system: str) -> list[str]:
    header = ["Minute", "Items/s", "Produced", "Backlog", "Claims", "p50 ms", "p99 ms"]
    header += ["Table MB", "Index MB", "Dead tuples", "HOT %", "Vacuums", "WAL MB", "RSS MB"]
    rows = [
        [
            str(x["minute"]),
            number(x.get("items_per_s"), 1),
            number(x.get("produced")),
            number(x.get("queued_backlog")),
            number(x.get("claims")),
            number(x.get("claim_p50_ms"), 2),
            number(x.get("claim_p99_ms"), 2),
            number(megabytes(x.get("table_bytes")), 1),
            number(megabytes(x.get("index_bytes")), 1),
            number(x.get("dead_tuples")),
            number(None if x.get("hot_update_ratio") is None else 100 * x["hot_update_ratio"], 1),
            number(x.get("vacuums")),
            number(megabytes(x.get("wal_bytes")), 1),
            number(x.get("worker_peak_rss_mb"), 1),
        ]
        for x in soak_lines(run, system)
    ]
    return table(header, rows)


def soak_section(run: Run, plot: Path | None) -> list[str]:
    if not run.soak_summaries and not run.soak_minutes:
        return [
            "*No soak in this run: `python bench/run.py --soak 30` adds one (curate, then"
            " PgQueuer at the same producer rate).*",
            "",
        ]
    out = [soak_intro(run), "", *soak_targets(run), ""]
    if plot is not None:
        out += [f"![The soak, minute by minute]({plot.name})", ""]
    for system in SOAK_SYSTEMS:
        if soak_lines(run, system):
            queue = "`pages`" if system == CURATE else "its queue table `pgqueuer`"
            out += [f"### {system} ({queue})", "", *soak_minutes_table(run, system), ""]
    return out


# --- measures on a server of their own ----------------------------------------------------


@dataclass(frozen=True)
class OwnServerSection:
    """The page's section of a measure bench/run.py runs on a PostgreSQL of its own (its
    `OWN_SERVER`): ``render`` makes it of the run's lines of ``measures``."""

    heading: str
    measures: tuple[str, ...]
    render: Callable[[list[Line]], list[str]]


OWN_SERVER_SECTIONS = (
    OwnServerSection("The realistic table", (render_item_cost.MEASURE,), render_item_cost.section),
    OwnServerSection("Many worker hosts", (render_hosts.MEASURE,), render_hosts.section),
    OwnServerSection(
        "Network latency",
        (render_latency.MEASURE, render_latency.PROBE, render_latency.SUMMARY),
        render_latency.section,
    ),
)


def own_server_section(run: Run, section: OwnServerSection) -> list[str]:
    """The section, or why this run has no figures for it."""
    lines = [x for x in run.lines if x.get("measure") in section.measures]
    measured = [x for x in lines if "skipped" not in x]
    out = [f"## {section.heading}", ""]
    if measured:
        body = section.render(measured)
        while body and not body[-1]:
            body.pop()
        return [*out, *body, ""]
    skipped = next((str(x["skipped"]) for x in lines), None)
    why = f"not measured in this run ({skipped})" if skipped else "not in this run"
    return [*out, f"*{why.capitalize()}: the full run measures it, as root.*", ""]


# --- machine, versions, commands ----------------------------------------------------------


def machine_section(run: Run) -> list[str]:
    meta = run.meta
    machine = meta.get("machine", {})
    rows = [
        ["CPU", f"{machine.get('cpu_model', '?')}, {machine.get('cpu_count', '?')} CPUs"],
        ["RAM", f"{number(machine.get('ram_gb'), 1)} GB"],
        ["OS", str(machine.get("os", "?"))],
        ["PostgreSQL", str(meta.get("postgresql", "?"))],
        ["curate commit", str(meta.get("git", "?"))],
    ]
    for env, version in sorted(meta.get("pythons", {}).items()):
        rows.append([f"Python ({env})", str(version).split()[0]])
    for env, packages in sorted(meta.get("packages", {}).items()):
        listed = ", ".join(f"{name} {ver}" for name, ver in sorted(packages.items()) if ver)
        rows.append([f"Packages ({env})", listed or DASH])
    rows.append(["Started", str(meta.get("started_at", "?"))])
    rows.append(["Finished", f"{run.end.get('finished_at', '?')} ({_duration(run)})"])
    return table(["", "This run"], rows)


def _duration(run: Run) -> str:
    seconds = run.end.get("seconds")
    return "unfinished" if seconds is None else f"{seconds / 60:.1f} min"


def commands_section(run: Run) -> list[str]:
    out = ["This run:", "", "```bash", str(run.meta.get("command", "?")), "```", ""]
    steps = [line.get("argv") for line in run.lines]
    shown = list(dict.fromkeys(" ".join(argv) for argv in steps if argv))  # one per step
    if shown:
        out += ["Each step, as run (one subprocess each):", "", "```bash", *shown, "```", ""]
    return out


def notes_section(notes: Path | None) -> list[str]:
    if notes is not None and notes.is_file():
        return [notes.read_text().strip(), ""]
    return ["*No profile notes yet (`bench/notes.md` is copied here when it exists).*", ""]


def problems_section(run: Run) -> list[str]:
    if not run.problems:
        return []
    rows = [
        [
            str(x.get("measure", "?")),
            str(x.get("system", "?")),
            str(x.get("step", "")),
            error_text(x),
        ]
        for x in run.problems
    ]
    return ["## Steps that failed", "", *table(["Measure", "System", "Step", "Error"], rows), ""]


def run_kind_warning(run: Run) -> list[str]:
    kind = run.meta.get("run", "full")
    if kind == "full":
        return []
    return [
        f"> **This page comes from a {kind} run** (`{run.meta.get('command', '?')}`), not the full"
        " benchmark: its figures are not the ones to quote. Run `bench/run` for those.",
        "",
    ]


# --- the page -----------------------------------------------------------------------------


def render_markdown(
    run: Run,
    results: Path,
    docs_dir: Path,
    plot: Path | None,
    notes: Path | None,
    soak_plot: Path | None = None,
) -> str:
    source = os.path.relpath(results, docs_dir)
    out = [
        "# Benchmarks",
        "",
        "curate against the queues its users would otherwise pick (Procrastinate, PgQueuer,"
        " Oban for Python) and a hand-written status loop, on one machine and one PostgreSQL,"
        " with no-op handlers, in one run. This page is generated by `bench/render.py` from"
        f" the raw results [`{Path(source).name}`]({source}); do not edit it by hand.",
        "",
        *run_kind_warning(run),
        "Ratios compare curate with the best peer *of the same run*: for throughput"
        " curate / best peer, for latency best peer / curate, so above 1 curate is ahead.",
        "",
        "## Targets",
        "",
        *targets_section(run),
        "",
        "## Drain throughput",
        "",
        "N no-op items already queued; the clock runs from worker start to the last outcome"
        " committed. `per_item`: one transaction per item (curate's default guarantee);"
        " `batched`: outcomes of many items written in one fenced statement (at-least-once).",
        "",
    ]
    if plot is not None:
        out += [f"![Drain throughput and pick-up latency]({plot.name})", ""]
    else:
        out += ["*The plot was not rendered (matplotlib is not installed here).*", ""]
    out += drain_sections(run)
    out += [
        "## Pick-up latency",
        "",
        f"From the commit that queues one row to its handler starting, at"
        f" {_rate(run)} rows/s, with LISTEN/NOTIFY on and off where the system allows.",
        "",
        *pickup_section(run),
        "",
        "## Claim cost vs table size",
        "",
        "One claim of 10 rows (curate's claim statement, rolled back each time) with 1,000"
        " queued rows in tables of growing size; the partial index on queued rows should keep"
        " it flat.",
        "",
        *claim_section(run),
        "",
        "## Memory",
        "",
        "Peak resident memory (RSS) of a worker process, the largest one when several ran,"
        " sampled every 100 ms during the largest drain of each configuration.",
        "",
        *memory_target(run),
        "",
        *memory_section(run),
        "",
        *(line for section in OWN_SERVER_SECTIONS for line in own_server_section(run, section)),
        "## Soak",
        "",
        *soak_section(run, soak_plot),
        "## Where the time goes",
        "",
        *notes_section(notes),
        *problems_section(run),
        "## Machine and versions",
        "",
        *machine_section(run),
        "",
        "## Commands",
        "",
        *commands_section(run),
    ]
    return "\n".join(out).rstrip("\n") + "\n"


def _rate(run: Run) -> str:
    rates = {float(x["rate"]) for x in run.pickups if ok(x) and x.get("rate")}
    return ", ".join(f"{rate:g}" for rate in sorted(rates)) or "?"


# --- the plot -----------------------------------------------------------------------------


def _bars(axis: Any, labels: list[str], series: dict[str, list[float]], unit: str) -> None:
    """Grouped horizontal bars on a log scale, one group per label, one bar per series."""
    if not any(value > 0 for values in series.values() for value in values):
        axis.text(0.5, 0.5, "no data in this run", ha="center", va="center")
        axis.set_axis_off()
        return
    height = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series.items()):
        positions = [i + index * height for i in range(len(labels))]
        axis.barh(positions, values, height, label=name)
    axis.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))])
    axis.set_yticklabels(labels)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel(f"{unit} (log scale)")
    axis.legend()


def _pyplot() -> Any:
    """matplotlib's pyplot drawing to files, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def render_plot(run: Run, path: Path) -> bool:
    """Drain throughput bars and pick-up p50/p95; False when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    drains = sorted((x for x in run.drains if drain_rate(x) is not None), key=drain_order(run))

    def key(line: Line) -> tuple[str, str, int]:
        return str(line["system"]), config_label(line), int(line.get("workers") or 1)

    keys = list(dict.fromkeys(map(key, drains)))
    throughput = {
        f"N = {n:,}": [
            next((drain_rate(x) or 0.0 for x in drains if x["n"] == n and key(x) == k), 0.0)
            for k in keys
        ]
        for n in sorted({int(x["n"]) for x in drains})
    }
    pickups = [line for line in run.pickups if p50(line) is not None]
    rows = max(len(keys), len(pickups))
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, max(4.0, 0.4 * rows + 1.5)))
    _bars(left, [f"{s} {c} {TIMES}{w}" for s, c, w in keys], throughput, "items/s")
    left.set_title(f"Drain throughput ({TIMES}n = n worker processes)")
    latency = {"p50": [p50(x) or 0.0 for x in pickups], "p95": [p95(x) or 0.0 for x in pickups]}
    names = [f"{x['system']} NOTIFY {x['notify']}" for x in pickups]
    _bars(right, names, latency, "ms from queueing to start")
    right.set_title(f"Pick-up latency at {_rate(run)} rows/s")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


SOAK_PANELS = (
    ("items_per_s", "Items through both stages per second", False),
    ("queued_backlog", "Queued backlog at the minute's end", False),
    ("claim_p99_ms", "Claim p99 ms (dashed: p50; dotted: the 5 ms target)", True),
    ("growth", "Table + index bytes ÷ the verdict's base minute", False),
    ("dead_tuples", "Dead tuples at the minute's end", False),
    ("hot_update_ratio", "HOT updates ÷ updates in the minute", False),
)


def render_soak_plot(run: Run, path: Path) -> bool:
    """The soak's minutes, curate and PgQueuer on shared axes; False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    from matplotlib.ticker import FormatStrFormatter

    figure, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for axis, (key, title, log_scale) in zip(axes.flat, SOAK_PANELS, strict=True):
        for system in SOAK_SYSTEMS:
            lines = soak_lines(run, system)
            if not lines:
                continue
            minutes = [x["minute"] for x in lines]
            values = [_soak_value(run, system, x, key) for x in lines]
            axis.plot(minutes, values, marker="o", markersize=3, label=system)
            if key == "claim_p99_ms":
                p50s = [x.get("claim_p50_ms") for x in lines]
                axis.plot(minutes, p50s, linestyle="--", color=axis.lines[-1].get_color())
            if key == "items_per_s" and soak_summary(run, system).get("rate"):
                axis.axhline(soak_summary(run, system)["rate"], color="grey", linestyle=":")
        if key == "claim_p99_ms":
            axis.axhline(SOAK_CLAIM_P99_MS, color="grey", linestyle=":")
        if key == "growth":
            axis.axhline(SOAK_GROWTH, color="grey", linestyle=":")
        if log_scale:
            axis.set_yscale("log")
            axis.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            axis.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        elif key == "hot_update_ratio":
            axis.set_ylim(-0.05, 1.05)
        elif key != "growth":
            axis.set_ylim(bottom=0)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("minute")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def _soak_value(run: Run, system: str, line: Line, key: str) -> float | None:
    if key != "growth":
        return line.get(key)
    base = soak_summary(run, system).get("targets", {}).get("growth", {}).get("base_bytes")
    return (line["table_bytes"] + line["index_bytes"]) / base if base else None


def _draw(draw: Callable[[Run, Path], bool], run: Run, path: Path) -> Path | None:
    """``path`` once ``draw`` has drawn it there, else None: the page is worth more than
    the plot, so a failure only leaves it out."""
    try:
        return path if draw(run, path) else None
    except (ValueError, RuntimeError, OSError) as error:
        print(f"render: no plot {path.name}: {error!r}", file=sys.stderr)
        return None


def render(results: Path, docs_dir: Path, notes: Path | None, plot: bool = True) -> Path:
    """Write benchmarks.md (and its plots when possible) into ``docs_dir``."""
    run = Run.load(results)
    docs_dir.mkdir(parents=True, exist_ok=True)
    drawn = _draw(render_plot, run, docs_dir / PLOT) if plot else None
    drawn_soak = plot and bool(run.soak_minutes)
    soak_plot = _draw(render_soak_plot, run, docs_dir / SOAK_PLOT) if drawn_soak else None
    page = docs_dir / PAGE
    page.write_text(render_markdown(run, results, docs_dir, drawn, notes, soak_plot))
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path, help="a bench/results/*.jsonl file")
    parser.add_argument("--docs-dir", type=Path, default=ROOT / "docs")
    parser.add_argument("--notes", type=Path, default=ROOT / "bench" / "notes.md")
    parser.add_argument("--no-plot", action="store_true", help="write the Markdown only")
    args = parser.parse_args()
    page = render(args.results.resolve(), args.docs_dir.resolve(), args.notes, not args.no_plot)
    print(page)


if __name__ == "__main__":
    main()
