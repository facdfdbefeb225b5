"""A network partition: a host cut off from its database (link down) for longer than its
lease while its items run.

The worker under test is a process in a network namespace (`tests.netns`) whose only way
to the database is a veth link to a server of the test's own (`tests.dedicated_server`)
listening on the link's outer address. The order is forced: the link goes down only once
all the host's items run, a second worker (in the root namespace) rescues their expired
rows and completes them, the link comes back, the host sees its claims lost, and only
then are its services let finish. Its outcomes and effects must then be refused: every
item Complete once, one effect each (the rescuer's), each item run twice (once per claim).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

import curate
from curate.db.own_tables import create_own_tables
from curate.testing import wait_until
from tests.dedicated_server import TRUST_HBA, DedicatedServer, dedicated_server
from tests.executions import ExecutionTable
from tests.helpers import effects_per_item, insert_items, status_counts
from tests.models import Base, Effect, Item
from tests.netns import Host, missing_netns, network_host
from tests.partition_app import REPORT, partition_workflow

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 6
CUT_OFF = "cut-off"
RESCUER = "rescuer"
KEEPALIVE_SECONDS = 1


@pytest.fixture
def host() -> Iterator[Host]:
    """A test host (tests/netns.py); where none can be made, skipped, or failed under CI."""
    missing = missing_netns()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the network partition test must run under CI: {missing}")
        pytest.skip(missing)
    with network_host() as made:
        yield made


@pytest.fixture
def server(host: Host) -> Iterator[DedicatedServer]:
    """A server of the test's own on 127.0.0.1 and on the host's link."""
    with dedicated_server(
        listen=("127.0.0.1", host.outer_address),
        hba=(*TRUST_HBA, f"host all all {host.network} trust"),
    ) as own:
        yield own


@pytest.fixture
async def rescuer(server: DedicatedServer) -> AsyncIterator[curate.Runtime]:
    """The second worker, in the root namespace on 127.0.0.1; on its engine, once it is
    seen to be the test's own server, the tables the workers need."""
    settings = curate.CurateSettings(database_url=server.url(), worker_id=RESCUER, pool_size=5)
    runtime = curate.Runtime(settings)
    try:
        async with (await runtime.database.engine()).begin() as conn:
            assert await conn.scalar(text("SHOW data_directory")) == str(server.data_dir)
            await conn.run_sync(Base.metadata.create_all)
            await create_own_tables(conn)
        await ExecutionTable.create(await runtime.database.engine())
        yield runtime
    finally:
        await runtime.close()


class CutOffWorker:
    """``tests.partition_app`` in the host's namespace, on the server's link address."""

    def __init__(self, host: Host, server: DedicatedServer, log: Path, own_row: bool) -> None:
        self.log = log
        env = {key: value for key, value in os.environ.items() if not key.startswith("CURATE_")}
        env.update(
            CURATE_DATABASE_URL=replace(server, host=host.outer_address).url(),
            CURATE_WORKER_ID=CUT_OFF,
            CURATE_LOG_LEVEL="INFO",
            # The server gives up on a silent connection of this worker's after ~4 s.
            CURATE_TCP_KEEPALIVE_SECONDS=str(KEEPALIVE_SECONDS),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        argv = [sys.executable, "-m", "tests.partition_app", str(ITEMS)]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                host.command(*argv, *(["own-row"] if own_row else [])),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def reports(self) -> list[dict[str, Any]]:
        lines = self.output().splitlines()
        return [json.loads(line.removeprefix(REPORT)) for line in lines if line.startswith(REPORT)]

    async def said(self, words: str) -> bool:
        assert self.process.poll() is None, self.output()
        return words in self.output()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.mark.parametrize("own_row", [False, True], ids=["effects-only", "own-row-locked"])
async def test_a_host_cut_off_past_its_lease_has_its_late_outcomes_refused(
    host: Host, server: DedicatedServer, rescuer: curate.Runtime, tmp_path: Path, own_row: bool
) -> None:
    """With ``own_row`` each service also wrote to its own row, so the host's open
    transactions hold the rows' locks, which a rescue skips: the rows are rescued only
    once the server has dropped the silent host's sessions (CURATE_TCP_KEEPALIVE_SECONDS,
    here 1 s: after ~4 s; the system's default would be two hours)."""
    db = await rescuer.database.engine()
    ids = await insert_items(db, ITEMS)
    executions = ExecutionTable(Item, "work", db)

    async def runs_of(worker: str) -> int:
        return sum(e.worker == worker for e in await executions.executions())

    flow = partition_workflow(RESCUER, executions, ITEMS, own_row=own_row)
    rescuer.register(flow)
    worker = CutOffWorker(host, server, tmp_path / "cut-off.log", own_row)
    try:
        # 1. All the host's items run (each recorded its start), held by its lease.
        async def all_running() -> bool:
            assert worker.process.poll() is None, worker.output()
            return await runs_of(CUT_OFF) == ITEMS

        await wait_until(all_running, seconds=30, what="the host's items to run")
        assert await status_counts(db) == {"Processing": ITEMS}

        # 2. The link goes down for longer than the lease: the rows are rescued and
        # completed by the rescuer, while the host's services still wait.
        host.cut()
        rescued = 0

        async def all_rescued() -> bool:
            nonlocal rescued
            rescued += await rescuer.rescue()
            return rescued == ITEMS

        await wait_until(all_rescued, seconds=20, poll_seconds=0.1, what="the rows to be rescued")
        result = await rescuer.run(flow)
        assert (result.claimed, result.completed) == (ITEMS, ITEMS), result
        assert worker.process.poll() is None, worker.output()

        # 3. The link comes back; the host's heartbeat finds its claims gone; only then
        # do its services finish, and their outcomes meet the fence.
        host.restore()
        heard = "lost the claim of"
        await wait_until(lambda: worker.said(heard), seconds=30, what="the heartbeat to see it")
        worker.process.send_signal(signal.SIGUSR1)
        assert await asyncio.to_thread(worker.process.wait, 30) == 0, worker.output()
    finally:
        worker.stop()
        await executions.close()

    output = worker.output()
    where, outcome = worker.reports()
    assert where == {"data_directory": str(server.data_dir), "client_address": host.address}
    assert outcome == {"claimed": ITEMS, "completed": 0, "dropped": ITEMS}, output
    # Refused at the fence: the completion itself, or, where the server had dropped the
    # host's silent sessions (its commit then failed), the failure written instead.
    refused = re.findall(r"claim lost before the (?:outcome|failure) was written", output)
    assert len(refused) == ITEMS, output

    assert await status_counts(db) == {"Complete": ITEMS}
    assert await effects_per_item(db) == dict.fromkeys(ids, 1)
    async with db.connect() as conn:
        assert set((await conn.execute(select(Effect.note))).scalars()) == {RESCUER}
    # Each item ran twice, once per claim: the host's first attempt, the rescuer's second.
    await executions.assert_runs_within(dict.fromkeys(ids, 2))
    runs = sorted((e.item_id, e.worker, e.attempts) for e in await executions.executions())
    expected = sorted((item, *run) for item in ids for run in ((CUT_OFF, 1), (RESCUER, 2)))
    assert runs == expected, runs
