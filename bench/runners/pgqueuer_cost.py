"""PgQueuer's side of bench/item_cost.py (bench/.venv-peers): its queue table installed,
filled and drained, each a command of its own, so the measure can take the server's
counts between them without importing PgQueuer into curate's environment.

    python bench/runners/pgqueuer_cost.py install --dsn DSN --schema S
    python bench/runners/pgqueuer_cost.py enqueue --dsn DSN --schema S --n N
    python bench/runners/pgqueuer_cost.py drain --dsn DSN --schema S --n N --batch-size 10

The PgQueuer of the drain benchmark (pgqueuer_runner.py): its install and its bulk
enqueue, then one `QueueManager` on one asyncpg connection with a no-op entrypoint, run as
that runner's worker runs it (continuous, the batch size given: 10 is PgQueuer's default).
The entrypoint stops the manager once it has run N times; PgQueuer writes the outcomes it
still buffers as it stops, so the queue table is empty when ``drain`` prints its one JSON
line, ``{"seconds": ...}`` from the manager's start to its return.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import asyncpg
import pgqueuer_runner
import protocol
from pgqueuer import Job, QueueManager
from pgqueuer.queries import Queries

SYSTEM = pgqueuer_runner.PgQueuer()


async def main(args: argparse.Namespace) -> None:
    ctx = protocol.Context(SYSTEM.name, args.dsn, args.schema, "drain", args)
    pgqueuer_runner._configure(ctx)
    conn = await asyncpg.connect(args.dsn, server_settings={"search_path": args.schema})
    try:
        if args.command == "install":
            await SYSTEM.setup(ctx, conn)
        elif args.command == "enqueue":
            await SYSTEM.enqueue_bulk(ctx, conn, args.n)
        else:
            print(json.dumps({"seconds": round(await drain(conn, args), 4)}), flush=True)
    finally:
        await conn.close()


async def drain(conn: asyncpg.Connection, args: argparse.Namespace) -> float:
    """Seconds for one QueueManager to run ``args.n`` jobs and write their outcomes."""
    manager = QueueManager(Queries.from_asyncpg_connection(conn))
    ran = 0

    @manager.entrypoint(pgqueuer_runner.ENTRYPOINT)
    async def noop(job: Job) -> None:
        nonlocal ran
        ran += 1
        if ran == args.n:
            manager.shutdown.set()

    started = time.perf_counter()
    await manager.run(batch_size=args.batch_size)
    return time.perf_counter() - started


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("install", "enqueue", "drain"))
    parser.add_argument("--dsn", required=True, help="postgresql://user@host:port/db")
    parser.add_argument("--schema", required=True, help="PgQueuer's tables go here")
    parser.add_argument("--n", type=int, default=0, help="jobs to queue, or to run")
    parser.add_argument("--batch-size", type=int, default=10, help="jobs per dequeue")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
