"""A worker process for the fault tests: ``python -m tests.faults.worker [--burst] ...``.

The database comes from CURATE_DATABASE_URL and CURATE_DATABASE_SCHEMA, as for any
curate process; the options shape the workflow. Every start of the service is recorded
in the table ``executions`` (`tests.executions.ExecutionTable`).
"""

from __future__ import annotations

import argparse
import asyncio

import curate
from curate.worker import run_burst, run_worker
from tests.faults.app import fault_executions, fault_workflow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    parser.add_argument("--work-seconds", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lease-seconds", type=float, default=60.0)
    parser.add_argument("--heartbeat-seconds", type=float, default=15.0)
    parser.add_argument("--interval-seconds", type=float, default=0.2)
    parser.add_argument("--max-attempts", type=int, default=curate.RetryPolicy().max_attempts)
    args = parser.parse_args()

    settings = curate.CurateSettings()
    curate.configure_logging(settings.log_level)
    runtime = curate.configure(settings)
    executions = fault_executions()
    flow = fault_workflow(
        settings.worker_id,
        args.work_seconds,
        executions,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        lease_seconds=args.lease_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        interval_seconds=args.interval_seconds,
        retry=curate.RetryPolicy(max_attempts=args.max_attempts),
        run_max_items=1_000_000,
    )

    async def work() -> None:
        try:
            await (run_burst([flow], runtime) if args.burst else run_worker([flow], runtime))
        finally:
            await executions.close()

    asyncio.run(work())


if __name__ == "__main__":
    main()
