"""CPU seconds used so far, for the measures that say what a run cost the machine: the
whole machine's, a server's of the measure's own (tests/dedicated_server.py), and the
measure's own process's.

Take one before and one after; the difference is what the measured span used. psutil only.
"""

from __future__ import annotations

import contextlib
import resource
from pathlib import Path

import psutil


def postmaster_pid(data_dir: Path) -> int:
    """The pid of the server whose data directory is ``data_dir``."""
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def server_seconds(data_dir: Path) -> float:
    """The server's: its postmaster's, its live processes' and those of the ones that
    exited (a backend whose connection closed), which the postmaster collected as its
    children's."""
    postmaster = psutil.Process(postmaster_pid(data_dir))
    own = postmaster.cpu_times()
    total = own.user + own.system + own.children_user + own.children_system
    for child in postmaster.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """The whole machine's busy seconds, over all its cores (guest time is inside user)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


def own_seconds() -> float:
    """This process's, and those of its children that exited and were waited for."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )
