"""Pause and rate limit: asked of the database right before each claim, on every worker.

Both live in one row per workflow of ``curate_workflow_controls``, so a pause or a resume
reaches every worker at its next claim, without a restart, and a rate limit holds across
all workers together. For an unlimited workflow the claim statement itself checks the
pause flag (no statement of its own); a rate-limited one runs a single statement that
reads the pause flag and takes
tokens from a token bucket (refilled at ``rate`` a second, holding at most `burst` tokens)
atomically, so concurrent workers never share a token. A claim takes only what it was
granted; with nothing granted it waits for the next token, as long as the run may.

Without the table (no migration created it yet) nothing can be paused, so a workflow
claims as if running, with a warning; a rate-limited one claims nothing, with an error
each run: running unlimited could flood what its limit protects.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from curate.db.own_tables import MissingTable, missing_table
from curate.engine.backoff import retry_on_connection_loss
from curate.engine.context import RunContext, RunResult
from curate.engine.error_text import format_error
from curate.engine.repeated_errors import log_error
from curate.logs import logger
from curate.sql import controls as sql

ASK_RETRY_DELAYS_SECONDS = (0.25, 1.0)
"""Brief, as for a claim: nothing is held yet, and the next run asks again anyway."""


def burst(rate: float) -> float:
    """The bucket's size: a second's worth of tokens, and at least one item."""
    return max(1.0, rate)


async def admit(
    ctx: RunContext, wanted: int, stop: asyncio.Event, deadline: float, result: RunResult
) -> int:
    """How many items the next claim may take: ``wanted``, fewer under the rate limit, 0
    when the workflow is paused, when ``stop`` is set or when the next token would come
    after ``deadline`` (``time.monotonic()``). Waits for a token, never past those.
    Without the controls table: ``wanted``, or 0 under a rate limit (`_without_controls`).

    If the controls cannot be read the run claims nothing (a pause must hold): the error
    goes to ``result`` and the log, and the next run asks again.
    """
    try:
        missing = await retry_on_connection_loss(
            lambda: missing_table(ctx.engine, sql.TABLE),
            "looking for the controls",
            delays=ASK_RETRY_DELAYS_SECONDS,
        )
        if missing is not None:
            return _without_controls(ctx, wanted, missing, result)
        while not stop.is_set():
            granted, wait = await retry_on_connection_loss(
                lambda: _ask(ctx, wanted), "reading the controls", delays=ASK_RETRY_DELAYS_SECONDS
            )
            if granted:
                return granted
            if wait is None:
                logger.debug("paused: not claiming")
                return 0
            if time.monotonic() + wait > deadline:
                logger.debug("rate limited: the next token comes after this run's budget")
                return 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    except Exception as exc:
        message = format_error(exc)
        result.errors.append(message)
        log_error(
            ctx.engine,
            ctx.name,
            "claim",
            f"cannot read {sql.TABLE}, so not claiming; the next run asks again: {message}",
        )
    return 0


def _without_controls(
    ctx: RunContext, wanted: int, missing: MissingTable, result: RunResult
) -> int:
    """How many items a claim may take without the controls table: ``wanted`` (the claim
    then has no pause check, see `curate.engine.claim`), none under a rate limit."""
    if ctx.config.rate_limit is not None:
        message = (
            f"{missing}, and the rate limit of workflow {ctx.name} needs it: not claiming"
            f" until it exists; {missing.how_to_create}"
        )
        result.errors.append(message)
        logger.error(message)
        return 0
    if missing.first_look:
        logger.warning(
            "{}: pause and rate limits are unavailable until it does; {}",
            missing,
            missing.how_to_create,
        )
    return wanted


async def _ask(ctx: RunContext, wanted: int) -> tuple[int, float | None]:
    """Items granted, and when none, seconds until the next token (None: paused)."""
    rate = ctx.config.rate_limit
    if rate is None:  # the claim checks the pause flag itself
        return wanted, None
    size = burst(rate)
    (row,) = await ctx.execute_alone(
        sql.TAKE,
        {
            "curate_workflow": ctx.name,
            "curate_wanted": wanted,
            "curate_rate": rate,
            "curate_burst": size,
            "curate_first_grant": min(wanted, math.floor(size)),
        },
    )
    if row.paused:
        return 0, None
    return row.granted, max(0.0, (1 - row.tokens) / rate)


async def give_back(ctx: RunContext, unused: int) -> None:
    """Return the tokens of items a claim was granted but did not find (the queue ran
    short), so an idle poll does not use up the bucket. Nothing to do without a limit."""
    rate = ctx.config.rate_limit
    if rate is None or unused <= 0:
        return
    try:
        await ctx.execute_alone(
            sql.GIVE_BACK,
            {"curate_workflow": ctx.name, "curate_unused": unused, "curate_burst": burst(rate)},
        )
    except Exception as exc:  # tokens lost: the bucket refills anyway
        logger.warning("could not give back {} unused tokens: {}", unused, format_error(exc))
