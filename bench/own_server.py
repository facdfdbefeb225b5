"""A stock PostgreSQL of the benchmark's own, held for as long as the caller needs it.

    .venv/bin/python bench/own_server.py [--conf LINE ...]

As root (the server runs as ``postgres``): starts a server with ``initdb``'s defaults
(tests/dedicated_server.py, with fsync back on, so that it is a stock server: autovacuum
on, 128 MB of shared buffers, commits flushed to disk) on a free port of 127.0.0.1, prints
one JSON line ``{"dsn": ...}``, and holds it until its stdin closes or it gets SIGTERM;
then stops it and deletes its data. bench/run.py runs the soak on one, so that the soak
meets autovacuum as a stock server has it and no other client of the machine's shared
server (which runs with autovacuum off) takes part.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.dedicated_server import dedicated_server  # noqa: E402

STOCK = ("fsync = on",)
"""What tests/dedicated_server.py changes from initdb's defaults that a stock server has."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", action="append", default=[], help="a postgresql.conf line")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/own_server.py needs root (the server runs as postgres)", file=sys.stderr)
        return 2
    done = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    with dedicated_server(conf=[*STOCK, *args.conf]) as server:
        print(json.dumps({"dsn": server.url(database="postgres")}), flush=True)
        while not done.wait(1):  # a short wait, so that SIGTERM's handler runs soon
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
