"""Logging an error that repeats at every run once, not at every run.

A wrong database (a missing column, a dropped table, a revoked grant) fails each run of a
workflow the same way, every few seconds, until someone fixes it. The first failure is an
ERROR line; the same line again is DEBUG, with how many times in a row; a different line is
an ERROR again; the first success after failures says so at INFO. Streaks are kept per
engine (weakly, as `curate.db.own_tables` keeps its answers), so each database, and each
test, starts afresh.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from curate.logs import logger


@dataclass
class _Streak:
    line: str
    times: int = 1


_streaks: weakref.WeakKeyDictionary[Engine, dict[tuple[str, str], _Streak]] = (
    weakref.WeakKeyDictionary()
)
"""Per engine, the last error of each workflow's task ("claim", "rescue") and its count."""


def log_error(engine: AsyncEngine, workflow: str, task: str, line: str) -> None:
    """Log ``line``, the error of ``workflow``'s ``task``: at ERROR unless it is the line
    that task failed with last time, then at DEBUG with the count."""
    streaks = _streaks.setdefault(engine.sync_engine, {})
    streak = streaks.get((workflow, task))
    log = logger.bind(workflow=workflow).opt(depth=1)  # the caller's module in the record
    if streak is not None and streak.line == line:
        streak.times += 1
        log.debug("{} ({} times in a row)", line, streak.times)
        return
    streaks[(workflow, task)] = _Streak(line)
    log.error("{}", line)


def log_recovery(engine: AsyncEngine, workflow: str, task: str) -> None:
    """``workflow``'s ``task`` worked: if it had been failing, say so once, at INFO."""
    streak = _streaks.get(engine.sync_engine, {}).pop((workflow, task), None)
    if streak is not None:
        logger.bind(workflow=workflow).opt(depth=1).info(
            "{} works again after {} failed tries", task, streak.times
        )
