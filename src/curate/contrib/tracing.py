"""OpenTelemetry tracing (the ``otel`` extra): a span per item, per claim and per rescue.

``instrument(runtime)`` adds an item hook, an error hook and an observer
(`curate.engine.hooks`) to the runtime; its spans go to ``tracer_provider``, else to the
global one:

- ``process <workflow>``, kind CONSUMER: one per item, current while the service runs
  and its outcome is written, so the service's own spans (HTTP clients, SQLAlchemy or
  asyncpg instrumentation) nest under it. A failure is recorded as an exception event
  with an error status; ``curate.outcome`` tells a retried failure from a final one.
  Where the table has ``<prefix>_trace_context`` it carries a link to the span that
  queued the row (`curate.trace_context`), in this process or any other.
- ``claim <workflow>``: one per claim that returned rows (empty polls are not traced:
  they would be a trace per worker per interval), with the row count.
- ``rescue <workflow>``: one per rescue that moved rows, with the row count.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from curate.engine.error_text import format_error
from curate.engine.hooks import ItemEvent
from curate.engine.outcome import Outcome
from curate.runtime import Runtime, get_runtime
from curate.trace_context import TRACEPARENT

TRACER_NAME = "curate"

WORKFLOW = "curate.workflow"
ITEM_ID = "curate.item_id"
ATTEMPT = "curate.attempt"
WORKER = "curate.worker"
OUTCOME = "curate.outcome"
"""Set when the item's span ends: an `Outcome` value (``completed``, ``retried``, …)."""
ROWS = "curate.rows"
"""Rows a claim took or a rescue moved."""

_FAILED_WITHOUT_EXCEPTION = {
    Outcome.FAILED: "the service set the failed status",
    Outcome.UNRECORDED: "the outcome could not be written",
}
"""Error statuses of outcomes no exception explains (an exception's own text wins)."""

_W3C = TraceContextTextMapPropagator()


def instrument(
    runtime: Runtime | None = None, *, tracer_provider: TracerProvider | None = None
) -> None:
    """Trace the items, claims and rescues of ``runtime`` (default: the configured one)
    from its next run on. Call it once per runtime, before other item hooks are added,
    so that the item's span wraps them too."""
    tracing = _Tracing(trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider))
    runtime = runtime or get_runtime()
    runtime.add_item_hook(tracing.item_span)
    runtime.add_error_hook(tracing.record_failure)
    runtime.add_observer(tracing)


@dataclass
class _ItemSpan:
    span: Span
    exception_recorded: bool = False


_current: ContextVar[_ItemSpan | None] = ContextVar("curate_item_span", default=None)
"""The span of the item running in this task, for the error hook."""


@dataclass(frozen=True)
class _Tracing:
    tracer: Tracer

    @asynccontextmanager
    async def item_span(self, event: ItemEvent) -> AsyncIterator[None]:
        attributes: dict[str, AttributeValue] = {
            WORKFLOW: event.workflow,
            ITEM_ID: str(event.item_id),
            ATTEMPT: event.attempt,
            WORKER: event.worker_id,
        }
        with self.tracer.start_as_current_span(
            f"process {event.workflow}",
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=queued_by(event.trace_context),
        ) as span:
            item = _ItemSpan(span)
            token = _current.set(item)
            try:
                yield
            finally:
                _current.reset(token)
                _end_item(item, event.outcome)

    async def record_failure(self, event: ItemEvent, error: BaseException) -> None:
        item = _current.get()
        if item is None:  # the item hook was not entered (a hook before it failed)
            return
        item.span.record_exception(error)
        item.span.set_status(Status(StatusCode.ERROR, format_error(error)))
        item.span.set_attribute("error.type", type(error).__qualname__)
        item.exception_recorded = True

    def claimed(self, workflow: str, count: int, seconds: float) -> None:
        if count:
            self._after_the_fact(f"claim {workflow}", seconds, {WORKFLOW: workflow, ROWS: count})

    def rescued(self, workflow: str, count: int, seconds: float) -> None:
        self._after_the_fact(f"rescue {workflow}", seconds, {WORKFLOW: workflow, ROWS: count})

    def _after_the_fact(
        self, name: str, seconds: float, attributes: Mapping[str, AttributeValue]
    ) -> None:
        """A span for what just ended and took ``seconds`` (observers hear afterwards)."""
        end = time.time_ns()
        start = end - int(seconds * 1e9)
        self.tracer.start_span(name, attributes=attributes, start_time=start).end(end)


def _end_item(item: _ItemSpan, outcome: Outcome | None) -> None:
    """Set the outcome (None: the run was cancelled mid-item, which the span records as
    the exception it exits with)."""
    if outcome is None:
        return
    item.span.set_attribute(OUTCOME, outcome.value)
    unexplained = _FAILED_WITHOUT_EXCEPTION.get(outcome)
    if unexplained is not None and not item.exception_recorded:
        item.span.set_status(Status(StatusCode.ERROR, unexplained))


def queued_by(trace_context: str | None) -> list[Link]:
    """A link to the span whose ``traceparent`` a row carries; none for a row without
    one (or with one that does not parse)."""
    if trace_context is None:
        return []
    queued = trace.get_current_span(_W3C.extract({TRACEPARENT: trace_context}))
    span_context = queued.get_span_context()
    return [Link(span_context)] if span_context.is_valid else []
