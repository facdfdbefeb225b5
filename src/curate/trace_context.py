"""The trace context a queued row carries: the W3C ``traceparent`` of the span queueing it.

Written by `Workflow.queue` into ``<prefix>_trace_context`` where the table has that
column, and read back by the claim, so that `curate.contrib.tracing` can link an item's
span to the request that queued it, in whichever process the item runs. OpenTelemetry is
optional: it is imported on the first queue into such a table, and without it (or
outside a recording span) the column is set to NULL.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator

TRACEPARENT = "traceparent"
"""The W3C Trace Context header the column holds, as ``00-<trace id>-<span id>-<flags>``."""


@cache
def w3c_propagator() -> TextMapPropagator | None:
    """The W3C Trace Context propagator, whatever the app's global propagator is (the
    column's format is fixed); None without OpenTelemetry. Looked for once."""
    try:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        return None
    return TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span if it is recording, else None."""
    propagator = w3c_propagator()
    if propagator is None:
        return None
    from opentelemetry import trace

    if not trace.get_current_span().is_recording():
        return None
    carrier: dict[str, str] = {}
    propagator.inject(carrier)
    return carrier.get(TRACEPARENT)
