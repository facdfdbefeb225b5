"""The rescue reads an index of the rows in flight, and a heartbeat can be a HOT update.

On a large table without the processing index, each rescue (every worker, every rescue
interval) reads the whole table: 750 ms for 1,000,000 pages rows of ~2 KB, measured in the
soak. With it the rescue reads the few rows in flight. Its key is never the lease, so the
heartbeat, which writes only the lease, changes no indexed column and may be HOT.

Each statement runs in a transaction of the test's own, which reads the backend's counters
(``pg_stat_xact_user_tables``) before and after it: how the table was read and how it was
updated, with no wait for the statistics to be flushed. (They also hold what earlier
transactions of the connection have not flushed yet, hence the differences.)
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import curate
from curate import ProcessingStatus, Workflow
from tests.helpers import insert_items, noop
from tests.models import Item

FINISHED_ROWS = 20_000
"""Enough finished rows that reading the whole table costs the planner more than an index."""
IN_FLIGHT = (1, 2, 3)
CLAIM = "claim-token"


async def table_counters(conn: AsyncConnection) -> tuple[int, int, int, int]:
    """The backend's reads and updates of ``items`` not flushed to the statistics yet."""
    result = await conn.execute(
        text(
            "SELECT seq_scan, idx_scan, n_tup_upd, n_tup_hot_upd"
            " FROM pg_stat_xact_user_tables WHERE relid = 'items'::regclass"
        )
    )
    return tuple(result.one())


class Counted:
    """What the statements between two `table_counters` did: seq_scan, idx_scan, n_tup_upd
    and n_tup_hot_upd as attributes."""

    def __init__(self, before: tuple[int, ...], after: tuple[int, ...]) -> None:
        self.seq_scan, self.idx_scan, self.n_tup_upd, self.n_tup_hot_upd = (
            b - a for a, b in zip(before, after, strict=True)
        )


async def rows_in_flight(engine: AsyncEngine, lease: timedelta) -> None:
    """Many finished rows, three Processing under one claim with ``lease`` left (negative:
    expired), statistics up to date."""
    await insert_items(engine, FINISHED_ROWS, ProcessingStatus.Complete)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE items SET work_status = 'Processing', work_claimed_by = :claim,"
                " work_attempts = 1, work_lease_until = now() + :lease"
                " WHERE id = ANY(:ids)"
            ),
            {"claim": CLAIM, "lease": lease, "ids": list(IN_FLIGHT)},
        )
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE items"))


async def rescue_reads(runtime: curate.Runtime, engine: AsyncEngine) -> tuple[Counted, int]:
    """How the rescue statement read the table, and how many rows it moved (rolled back)."""
    ctx = await runtime.context(Workflow("work", model=Item, service=noop))
    assert ctx.statements.rescue is not None
    params = {
        **ctx.statements.rescue_params(ctx.config.retry.max_attempts, None),
        **ctx.attempt_params(None),  # the rescue records the attempts it ends
    }
    async with engine.connect() as conn:
        before = await table_counters(conn)
        rescued = len((await conn.execute(ctx.statements.rescue, params)).all())
        counted = Counted(before, await table_counters(conn))
        await conn.rollback()
    return counted, rescued


async def test_the_rescue_reads_the_rows_in_flight_not_the_table(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await rows_in_flight(engine, timedelta(minutes=-1))

    counters, rescued = await rescue_reads(runtime, engine)
    assert rescued == len(IN_FLIGHT)
    assert counters.seq_scan == 0 and counters.idx_scan > 0

    async with engine.begin() as conn:  # as on a table migrated before the index existed
        await conn.execute(text("DROP INDEX ix_items_work_processing"))
    counters, rescued = await rescue_reads(runtime, engine)
    assert rescued == len(IN_FLIGHT)
    assert counters.seq_scan == 1  # the whole table, which the index spares


async def test_a_heartbeat_is_a_hot_update_and_a_status_change_is_not(
    runtime: curate.Runtime, engine: AsyncEngine
) -> None:
    await rows_in_flight(engine, timedelta(minutes=1))
    ctx = await runtime.context(Workflow("work", model=Item, service=noop))
    assert ctx.statements.heartbeat is not None
    claims = [(item_id, CLAIM) for item_id in IN_FLIGHT]
    params = ctx.statements.heartbeat_params(claims, timedelta(minutes=5))
    async with engine.connect() as conn:
        before = await table_counters(conn)
        renewed = (await conn.execute(ctx.statements.heartbeat, params)).all()
        beaten = await table_counters(conn)
        await conn.execute(
            text("UPDATE items SET work_status = 'Complete' WHERE id = ANY(:ids)"),
            {"ids": list(IN_FLIGHT)},
        )
        beat, outcome = Counted(before, beaten), Counted(beaten, await table_counters(conn))
        await conn.rollback()

    assert len(renewed) == len(IN_FLIGHT)
    assert (beat.n_tup_upd, beat.n_tup_hot_upd) == (3, 3)  # no index entry written
    assert (outcome.n_tup_upd, outcome.n_tup_hot_upd) == (3, 0)  # a status change: not HOT
