"""Hooks an app registers once at start-up: timing, a per-item context, error reporting."""

import contextvars
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import curate
from curate.engine.hooks import ItemEvent
from loguru import logger

current_item: contextvars.ContextVar[str] = contextvars.ContextVar("current_item", default="-")
reported: list[str] = []  # stands in for Sentry, Rollbar, ...


@asynccontextmanager
async def timing(event: ItemEvent) -> AsyncIterator[None]:
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    logger.info("{} item {}: {} in {:.3f} s", event.workflow, event.item_id, event.outcome, seconds)


@asynccontextmanager
async def item_context(event: ItemEvent) -> AsyncIterator[None]:
    """Services (and their logs) can read which item they work on."""
    token = current_item.set(f"{event.workflow}:{event.item_id}#{event.attempt}")
    try:
        yield
    finally:
        current_item.reset(token)


async def report_error(event: ItemEvent, error: BaseException) -> None:
    reported.append(f"{current_item.get()} {event.outcome}: {error}")


def install(runtime: curate.Runtime) -> None:
    runtime.add_item_hook(timing)  # outermost: its time includes the other hooks
    runtime.add_item_hook(item_context)
    runtime.add_error_hook(report_error)
