"""The attempt history as the engine keeps it: which statements record attempts, and the
trim that bounds the table (`curate.sql.history`).

Recording costs no statement of its own: the outcome writes record the attempt themselves.
``CURATE_ATTEMPT_HISTORY`` says which attempts: ``failures`` (the default: every attempt
that did not complete, so the happy path writes nothing more), ``all`` (completions too:
one more row, three index entries and about 40 µs of server CPU per item in the per-item
mode, measured by bench/item_cost.py) or ``off``. Only where ``curate_attempts`` exists (a
migration creates it, never the app's role at run time): without it the outcomes are
written as before, with one warning.
"""

from __future__ import annotations

import weakref
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from curate.db.own_tables import can_insert, missing_table
from curate.engine.error_text import format_error
from curate.logs import logger
from curate.settings import CurateSettings
from curate.sql import WorkflowStatements, history
from curate.workflow import Workflow

TRIM_BATCH = 10_000
"""Attempts deleted by age in one pass at most; a pass that finds more leaves them to the
next, so a first trim of a large backlog never holds a long transaction."""


async def statements_for(
    workflow: Workflow, engine: AsyncEngine, settings: CurateSettings
) -> WorkflowStatements:
    """The workflow's statements, recording attempts when the history is on and its table
    exists."""
    if settings.attempt_history == "off":
        return workflow.statements
    try:
        why = await why_not_recordable(engine)
    except Exception as exc:  # the run's claim will say what is wrong with the database
        logger.debug("could not look for the attempt history's table: {}", format_error(exc))
        return workflow.statements
    if why is None:
        if settings.attempt_history == "all":
            return workflow.statements_recording_all
        return workflow.statements_recording_failures
    _say_once(
        engine, f"the attempt history is not recorded: {why} (or set CURATE_ATTEMPT_HISTORY=off)"
    )
    return workflow.statements


async def why_not_recordable(engine: AsyncEngine) -> str | None:
    """Why ``engine``'s role cannot record attempts (the table is missing, or it may not
    insert into it); None when it can. Both answers are cached once yes."""
    missing = await missing_table(engine, history.TABLE)
    if missing is not None:
        return f"{missing}; {missing.how_to_create}"
    if not await can_insert(engine, history.TABLE):
        return f"the database role may not insert into {history.TABLE}; grant it INSERT"
    return None


_said: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
"""Per engine, the last reason given for not recording: said once, not at every run."""


def _say_once(engine: AsyncEngine, line: str) -> None:
    if _said.get(engine.sync_engine) != line:
        _said[engine.sync_engine] = line
        logger.warning("{}", line)


async def trim(engine: AsyncEngine, settings: CurateSettings, since: timedelta) -> int | None:
    """Delete attempts older than ``attempt_history_days`` (at most `TRIM_BATCH`) and all but
    the newest ``attempt_history_per_item`` of each item that had an attempt within
    ``since``; how many were deleted. None when another worker is trimming, or when the
    history is off or its table missing."""
    if settings.attempt_history == "off" or await missing_table(engine, history.TABLE) is not None:
        return None
    async with engine.begin() as connection:
        if not await connection.scalar(history.TRIM_LOCK):
            return None
        old = await connection.execute(
            history.TRIM_OLD,
            {
                "curate_age": timedelta(days=settings.attempt_history_days),
                "curate_limit": TRIM_BATCH,
            },
        )
        extra = await connection.execute(
            history.TRIM_PER_ITEM,
            {"curate_since": since, "curate_keep": settings.attempt_history_per_item},
        )
    return old.rowcount + extra.rowcount
