"""One replica running an every-second periodic job until SIGTERM (tests/test_periodic.py).

``python -m tests.periodic_app`` with ``CURATE_DATABASE_URL``, ``CURATE_DATABASE_SCHEMA``
and ``CURATE_WORKER_ID``. The job writes which worker ran each scheduled time into
`EFFECTS`, and what that worker's clock said then, so the test can count how often each
time ran across processes and see a host whose clock is off (faketime) ran it.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, Table, Text, insert

import curate
from curate import scheduling

EFFECTS = Table(
    "periodic_effects",
    MetaData(),
    Column("scheduled_at", DateTime(timezone=True), nullable=False),
    Column("worker_id", Text, nullable=False),
    Column("host_clock", DateTime(timezone=True)),
)


@curate.periodic(every_seconds=1)
async def record_tick(scheduled_at: datetime) -> None:
    runtime = curate.get_runtime()
    engine = await runtime.database.engine()
    async with engine.begin() as connection:
        await connection.execute(
            insert(EFFECTS),
            {
                "scheduled_at": scheduled_at,
                "worker_id": runtime.settings.worker_id,
                "host_clock": datetime.now(UTC),
            },
        )


async def main() -> None:
    runtime = curate.configure()
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    scheduling.add_periodic_job(record_tick)
    scheduling.start_scheduler()
    await stopped.wait()
    await scheduling.shutdown_scheduler()
    await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
