"""A standalone worker process: run workflows until told to stop (the engine of `curate run`).

On SIGTERM or SIGINT it shuts down gracefully: it stops claiming, hands claimed but
unstarted items back, lets running items finish for up to the grace period, re-queues
what is still running after that, and returns.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence

from curate import scheduling
from curate.logs import logger
from curate.runtime import Runtime, get_runtime
from curate.workflow import Workflow


async def run_worker(
    workflows: Sequence[Workflow],
    runtime: Runtime | None = None,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``workflows`` on the shared scheduler until SIGTERM/SIGINT (or ``stop`` is set)."""
    runtime = runtime or get_runtime()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        for workflow in workflows:
            scheduling.add_workflow_job(workflow, scheduling.job_for(workflow, runtime), runtime)
        scheduling.start_scheduler(runtime)
        logger.info("worker {} running {}", runtime.settings.worker_id, [w.name for w in workflows])
        await stop.wait()
        logger.info("stopping: no new claims; running items get up to the grace period")
        await scheduling.shutdown_scheduler(runtime=runtime)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runtime.close()


async def run_burst(workflows: Sequence[Workflow], runtime: Runtime | None = None) -> None:
    """Process until every workflow's queue is empty, then return (tests, batch jobs).

    Expired leases are rescued between rounds, so rows of dead workers are included.
    """
    runtime = runtime or get_runtime()
    try:
        while True:
            claimed = 0
            for workflow in workflows:
                claimed += (await runtime.run(workflow)).claimed
            if claimed == 0 and await runtime.rescue() == 0:
                return
    finally:
        await runtime.close()
