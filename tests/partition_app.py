"""A worker to cut off from its database:
``ip netns exec NS python -m tests.partition_app N [own-row]``.

One run of the workflow ``work`` over `tests.models.Item` (the database from
CURATE_DATABASE_URL, as for any curate process) that claims ``N`` items at once on a short
lease. Each item records its start (`tests.executions.ExecutionTable`), adds its effect
in the session curate gives it, then waits for SIGUSR1: the test cuts the link while the
items wait there, and lets them finish once their rows were rescued and completed
elsewhere. It prints two ``partition: {json}`` lines: where it is connected, from which
address (the test host's own, or the test proves nothing), and what the run did.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

import curate
from tests.executions import ExecutionLog, ExecutionTable
from tests.models import Effect, Item

LEASE_SECONDS = 2.0
"""Short, so a cut link outlives it within seconds."""
HEARTBEAT_SECONDS = 0.5
REPORT = "partition: "


def partition_workflow(
    worker: str,
    executions: ExecutionLog,
    items: int,
    hold: asyncio.Event | None = None,
    own_row: bool = False,
) -> curate.Workflow:
    """The workflow of both sides of the partition: the service records its start, adds an
    effect noted ``worker`` in curate's session, with ``own_row`` writes to its own row
    (so its open transaction holds that row's lock, as a service saving its result does),
    and waits for ``hold`` if given."""

    async def process_single_work(item_id: Any, session: AsyncSession) -> None:
        await executions.record(session, item_id)
        session.add(Effect(item_id=item_id, note=worker))
        if own_row:
            await session.execute(
                update(Item).where(Item.id == item_id).values(payload=f"by {worker}")
            )
        if hold is not None:
            await hold.wait()

    return curate.Workflow(
        "work",
        model=Item,
        service=process_single_work,
        # One claim takes all the items and comes back short: the run claims no more, so
        # no claim of its own meets the cut link.
        batch_size=items + 1,
        concurrency=items,
        lease_seconds=LEASE_SECONDS,
        heartbeat_seconds=HEARTBEAT_SECONDS,
    )


def report(**values: Any) -> None:
    print(REPORT + json.dumps(values), flush=True)


async def main(items: int, own_row: bool) -> None:
    settings = curate.CurateSettings()
    curate.configure_logging(settings.log_level)
    runtime = curate.Runtime(settings)
    executions = ExecutionTable(Item, "work")
    finish = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, finish.set)
    flow = partition_workflow(settings.worker_id, executions, items, finish, own_row)
    try:
        async with (await runtime.database.engine()).connect() as conn:
            where = await conn.execute(
                text("SELECT current_setting('data_directory'), host(inet_client_addr())")
            )
            data_directory, client_address = where.one()
        report(data_directory=data_directory, client_address=client_address)
        result = await runtime.run(flow)
        report(claimed=result.claimed, completed=result.completed, dropped=result.dropped)
    finally:
        await executions.close()
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), own_row=sys.argv[2:] == ["own-row"]))
