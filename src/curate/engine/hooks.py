"""Hook points for integrations (metrics, tracing): around each item, on claims and rescues.

An **item hook** is a factory of async context managers, called with an `ItemEvent` for
each item a worker executes. The context it returns is entered before the service is
called and left after the outcome is recorded, with ``event.outcome`` set by then (None
if the run was cancelled mid-item, in which case the exit sees the `CancelledError`)::

    @asynccontextmanager
    async def trace(event: ItemEvent) -> AsyncIterator[None]:
        with tracer.start_as_current_span(event.workflow) as span:
            yield
            span.set_attribute("curate.outcome", str(event.outcome))

    runtime.add_item_hook(trace)

Hooks nest in a defined order: the runtime's, in the order they were added (the first is
the outermost), then the workflow's own (`Workflow(item_hooks=...)`). A hook runs in the
item's task, so a context variable it sets is visible to the service.

An **error hook** is called after a service's failure is recorded (``event.outcome`` says
whether it will be retried), with the exception, in the order the hooks were added: the
place for error reporting (Sentry and the like)::

    async def report(event: ItemEvent, error: BaseException) -> None:
        sentry_sdk.capture_exception(error)

    runtime.add_error_hook(report)

An **observer** hears of claims (how many rows, how long the statement took) and rescues.
Neither may break a run: an error raised by a hook or an observer is logged and ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from curate.engine.error_text import format_error
from curate.logs import logger

if TYPE_CHECKING:
    from curate.engine.outcome import Outcome


@dataclass
class ItemEvent:
    """One item being executed: which, which attempt, and (once recorded) its outcome."""

    workflow: str
    item_id: Any
    attempt: int
    worker_id: str
    outcome: Outcome | None = None
    trace_context: str | None = None
    """The ``traceparent`` of the trace that queued the row, where the table keeps it
    (``<prefix>_trace_context``); `curate.contrib.tracing` links the item's span to it."""


ItemHook = Callable[[ItemEvent], AbstractAsyncContextManager[Any]]
"""Called once per item; the context it returns wraps the service call and the outcome."""

ErrorHook = Callable[[ItemEvent, BaseException], Awaitable[None]]
"""Called once per failed item, after the failure is recorded, with what the service raised."""


class Observer(Protocol):
    """Hears of claims and rescues (the metrics use it); both calls must be quick."""

    def claimed(self, workflow: str, count: int, seconds: float) -> None:
        """A claim statement returned ``count`` rows after ``seconds``."""

    def rescued(self, workflow: str, count: int, seconds: float) -> None:
        """The rescuer moved ``count`` rows with expired leases, in a transaction that
        took ``seconds`` (so a tracer can place its span)."""


@asynccontextmanager
async def around_item(hooks: Sequence[ItemHook], event: ItemEvent) -> AsyncIterator[None]:
    """Enter every hook for ``event``, in order; leave them in reverse order."""
    entered: list[AbstractAsyncContextManager[Any]] = []
    for hook in hooks:
        try:
            context = hook(event)
            await context.__aenter__()
        except Exception as exc:
            logger.error("item hook {!r} failed on entry: {}", hook, format_error(exc))
            continue
        entered.append(context)
    try:
        yield
    except BaseException as error:
        await _leave(entered, error)
        raise
    await _leave(entered, None)


async def _leave(
    entered: list[AbstractAsyncContextManager[Any]], error: BaseException | None
) -> None:
    for context in reversed(entered):
        try:
            await context.__aexit__(
                type(error) if error is not None else None,
                error,
                error.__traceback__ if error is not None else None,
            )
        except Exception as exc:
            logger.error("item hook {!r} failed on exit: {}", context, format_error(exc))


async def report_error(hooks: Sequence[ErrorHook], event: ItemEvent, error: BaseException) -> None:
    """Call every error hook in order; a hook's own error is logged and the rest still run."""
    for hook in hooks:
        try:
            await hook(event, error)
        except Exception as exc:
            logger.error("error hook {!r} failed: {}", hook, format_error(exc))


def notify_observers(observers: Sequence[Observer], call: Callable[[Observer], None]) -> None:
    """Call ``call(observer)`` for each observer; an observer's error is logged, not raised."""
    for observer in observers:
        try:
            call(observer)
        except Exception as exc:
            logger.error("observer {!r} failed: {}", observer, format_error(exc))
