"""Claim cost vs table size: curate's claim statement on a table of R rows, 1,000 of them queued.

    .venv/bin/python bench/claim_cost.py claim-cost --dsn DSN --rows 10000000 --queued 1000

Builds a table from a `curate.workflow_mixin` model with ``create_all`` in a throw-away
schema, as an app's tests do (so with the queued partial index on (priority DESC, id) that
the mixin declares), rows from generate_series, then ANALYZE; and
times the claim of `curate.Workflow(...).statements.claim` for a batch of 10, each in a
transaction that rolls back, so every claim sees the same table. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import curate
from curate.db.own_tables import create_own_tables
from curate.engine.driver import driver_statement

PREFIX = "bench"


class Base(DeclarativeBase):
    pass


class ClaimItem(curate.workflow_mixin(PREFIX), Base):  # type: ignore[misc]
    __tablename__ = "claim_items"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


async def noop(item_id: int, session: AsyncSession) -> None:
    """Never called: only the claim statement is timed."""


async def build(conn: AsyncConnection, rows: int, queued: int) -> None:
    """R rows, the last ``queued`` of them Queued and the others Complete, in a table made
    as a user's model makes it (``create_all``: the mixin declares the queued index)."""
    await conn.run_sync(Base.metadata.create_all)
    await create_own_tables(conn)  # as a migrated app has them
    await conn.execute(text("SET LOCAL synchronous_commit = off"))
    await conn.execute(
        text(
            f"INSERT INTO claim_items (id, {PREFIX}_status)"
            f" SELECT g, CASE WHEN g > :done THEN 'Queued' ELSE 'Complete' END::{PREFIX}_status"
            " FROM generate_series(1, :rows) AS g"
        ),
        {"done": rows - queued, "rows": rows},
    )


async def measure(dsn: str, rows: int, queued: int, batch: int, iterations: int) -> dict[str, Any]:
    schema = f"bench_claim_{uuid.uuid4().hex[:8]}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    admin = create_async_engine(url)
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})
    flow = curate.Workflow(PREFIX, model=ClaimItem, service=noop)
    claim = flow.statements.claim
    params = flow.statements.claim_params(PREFIX, batch, "bench-claim", timedelta(minutes=5))
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
        started = time.perf_counter()
        async with engine.begin() as conn:
            await build(conn, rows, queued)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE claim_items"))
        load_seconds = time.perf_counter() - started
        timings = []
        # The claim as curate sends it: through the driver (curate.engine.driver), timed
        # inside a transaction that rolls back, so the table stays as it was.
        statement = driver_statement(claim, engine.dialect)
        arguments = statement.arguments(params)
        async with engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            for index in range(iterations + iterations // 10):
                transaction = driver.transaction()
                await transaction.start()
                begun = time.perf_counter()
                claimed = await driver.fetch(statement.sql, *arguments)
                elapsed = time.perf_counter() - begun
                await transaction.rollback()
                assert len(claimed) == min(batch, queued), claimed
                if index >= iterations // 10:  # the first tenth warms up
                    timings.append(elapsed * 1000)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        await engine.dispose()
        await admin.dispose()
    return {
        "system": "curate",
        "version": importlib.metadata.version("curate-workflows"),
        "measure": "claim_cost",
        "rows": rows,
        "queued": queued,
        "p50_ms": round(statistics.median(timings), 3),
        "p95_ms": round(statistics.quantiles(timings, n=20)[-1], 3),
        "max_ms": round(max(timings), 3),
        "settings": {"batch": batch, "iterations": iterations, "load_seconds": round(load_seconds)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["claim-cost"])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--queued", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args()
    line = asyncio.run(measure(args.dsn, args.rows, args.queued, args.batch, args.iterations))
    print(json.dumps(line))


if __name__ == "__main__":
    main()
