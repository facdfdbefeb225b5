"""The dashboard's charts' data on the real database: each worker's outcomes per minute, summed
in ``curate_workflow_stats`` across workers, queue samples, retention, a missing table; the
series read back; the SVG charts drawn from it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import ProcessingStatus, browsing, scheduling
from curate.contrib.charts import bar_chart, line_chart
from curate.engine.stats_recorder import StatsRecorder
from curate.testing import wait_until
from tests.cli_app import work
from tests.helpers import insert_items, status_counts, worker_runtimes
from tests.models import Item

MINUTE = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


async def stats_rows(engine: AsyncEngine) -> list[tuple[str, datetime, int, int, int, int | None]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT workflow, minute, completed, failed, retried, queued"
                " FROM curate_workflow_stats ORDER BY workflow, minute"
            )
        )
        return [tuple(row) for row in found]  # type: ignore[misc]


async def totals(engine: AsyncEngine) -> tuple[int, int, int]:
    rows = await stats_rows(engine)
    return (sum(r[2] for r in rows), sum(r[3] for r in rows), sum(r[4] for r in rows))


async def test_two_workers_writing_the_same_minute_sum_up(
    settings: curate.CurateSettings, engine: AsyncEngine
) -> None:
    async with worker_runtimes(settings, 2) as workers:
        at = MINUTE + timedelta(seconds=30)
        for n, worker in enumerate(workers):
            for _ in range(20):  # many outcomes, one row per minute in memory
                worker.stats_recorder.count("work", "completed", n + 1, at=at)
                worker.stats_recorder.count("work", "failed", at=at)
                worker.stats_recorder.count("work", "retried", 2, at=at)
                worker.stats_recorder.count("work", "dropped", 5, at=at)  # not charted
        await asyncio.gather(*(w.stats_recorder.flush(w.database, [], 7.0) for w in workers))
    # The minute is old, but only rows of the flushed workflows are pruned: none here.
    assert await stats_rows(engine) == [("work", MINUTE, 20 * (1 + 2), 40, 80, None)]


async def test_runs_of_two_workers_are_counted_once_each(
    settings: curate.CurateSettings, engine: AsyncEngine
) -> None:
    await insert_items(engine, 60)
    async with engine.begin() as conn:  # six of them fail for good
        await conn.execute(text("UPDATE items SET payload = 'fail' WHERE id <= 6"))
    async with worker_runtimes(settings, 2) as workers:
        await asyncio.gather(*(worker.run(work) for worker in workers))
        await asyncio.gather(*(worker.flush_stats() for worker in workers))
        assert (await status_counts(engine))["Complete"] == 54
        assert await totals(engine) == (54, 6, 0)
        # Each worker sampled the queue, or found this minute's sample there: empty now.
        assert [row[5] for row in await stats_rows(engine) if row[5] is not None] == [0]


async def test_each_outcome_is_counted_in_the_minute_it_ended(engine: AsyncEngine) -> None:
    recorder = StatsRecorder()
    for seconds, outcome in ((10, "completed"), (50, "completed"), (70, "failed")):
        recorder.count("work", outcome, at=MINUTE + timedelta(seconds=seconds))
    await recorder.flush(curate.get_runtime().database, [], 7.0)
    rows = await stats_rows(engine)
    assert [(r[1].minute, r[2], r[3]) for r in rows] == [(4, 2, 0), (5, 0, 1)]


async def test_queue_depth_is_sampled_and_old_rows_are_pruned(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 7)
    old = datetime.now(UTC) - timedelta(days=8)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO curate_workflow_stats (workflow, minute, completed) VALUES"
                " ('work', :old, 5), ('work', :recent, 6), ('other', :old, 1)"
            ),
            {"old": old, "recent": old + timedelta(days=2)},
        )
    runtime.register(work)
    await runtime.flush_stats()
    rows = await stats_rows(engine)
    # work's row past the 7 days is gone; a workflow this process does not run is left.
    assert [(r[0], r[2]) for r in rows if r[5] is None] == [("other", 1), ("work", 6)]
    [sample] = [r for r in rows if r[5] is not None]
    assert (sample[0], sample[5]) == ("work", 7)


async def test_a_missing_table_is_said_once_and_runs_go_on(
    runtime: curate.Runtime, engine: AsyncEngine, log_lines: list[str]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE curate_workflow_stats"))
    await insert_items(engine, 3)
    for _ in range(2):
        await runtime.run(work)
        await runtime.flush_stats()
    assert (await status_counts(engine))["Complete"] == 3
    said = [line for line in log_lines if "curate_workflow_stats does not exist" in line]
    assert len(said) == 1 and "WARNING" in said[0] and "curate db upgrade" in said[0]
    with pytest.raises(curate.ConfigurationError, match="no charts: curate's table"):
        await browsing.read_stats(engine, work, 6)


async def test_the_shutdown_writes_what_the_last_flush_missed(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await insert_items(engine, 5)
    scheduling.add_workflow_job(work, scheduling.job_for(work, runtime), runtime)
    scheduling.start_scheduler(runtime)

    async def done() -> bool:
        return (await status_counts(engine))["Complete"] == 5

    await wait_until(done, what="the items to complete")
    await scheduling.shutdown_scheduler(5, runtime)
    assert await totals(engine) == (5, 0, 0)


async def test_the_series_sums_buckets_across_workers(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO curate_workflow_stats VALUES"
                " ('work', :now, 3, 1, 0, 10), ('work', :before, 2, 0, 1, 4),"
                " ('seed', :now, 50, 50, 50, 50)"
            ),
            {"now": now, "before": now - timedelta(hours=2)},
        )
    series = await browsing.read_stats(engine, work, 6)
    assert (series.hours, series.bucket_seconds, len(series.buckets)) == (6, 300, 72)
    assert series.buckets[-1].start <= now < series.buckets[-1].start + timedelta(minutes=5)
    counted = [(b.completed, b.failed, b.retried, b.queued) for b in series.buckets if b.completed]
    assert counted == [(2, 0, 1, 4), (3, 1, 0, 10)]
    assert sum(b.queued is None for b in series.buckets) == 70
    day = await browsing.read_stats(engine, work, 24)
    assert (day.bucket_seconds, len(day.buckets)) == (1200, 72)


def test_charts_escape_and_describe_themselves() -> None:
    points = [(MINUTE + timedelta(minutes=5 * i), float(v)) for i, v in enumerate([0, 4, 2])]
    svg = bar_chart('c"1', "<b>done</b> & more", points, color='red" onload="x')
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"')
    assert 'id="c&quot;1"' in svg and 'aria-labelledby="c&quot;1-title c&quot;1-desc"' in svg
    assert '<title id="c&quot;1-title">&lt;b&gt;done&lt;/b&gt; &amp; more</title>' in svg
    assert "<b>" not in svg and 'onload="x' not in svg
    assert "6 in total over 3 buckets, at most 4 in one from 03:04 to 03:14 UTC." in svg
    assert svg.count("<rect") == 3 and ">03:14 UTC</text>" in svg  # the x-axis' last label
    gappy = [(at, None if i == 1 else value) for i, (at, value) in enumerate(points)]
    line = line_chart("q", "Queue", gappy, color="blue")
    assert "Latest 2, highest 2, sampled in 2 of 3 buckets" in line
    assert line.count("<circle") == 2 and '<path d="M' not in line.split("</g>", 2)[1]
    assert "No samples in 1 buckets" in line_chart("e", "Queue", [(MINUTE, None)], color="b")


async def test_stats_endpoint(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    from tests.test_fastapi import client, router_app

    async with engine.begin() as conn:
        await conn.execute(insert(Item), [{"id": 1, "work_status": ProcessingStatus.Queued}])
    runtime.register(work)
    await runtime.flush_stats()
    async with client(router_app()) as http:
        answer = (await http.get("/curate/workflows/work/stats", params={"hours": 1})).json()
        refused = await http.get("/curate/workflows/work/stats", params={"hours": 169})
    assert (answer["workflow"], answer["hours"], answer["bucket_seconds"]) == ("work", 1, 60)
    assert len(answer["buckets"]) == 60 and answer["buckets"][-1]["queued"] == 1
    assert refused.status_code == 422
