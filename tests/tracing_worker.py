"""A worker process that traces: ``python -m tests.tracing_worker SPANS_FILE``.

Drains the ``job`` workflow of tests/tracing_app.py (database and schema from
CURATE_DATABASE_URL and CURATE_DATABASE_SCHEMA, as for any curate process) with
`curate.contrib.tracing` on an SDK tracer provider, then writes the spans it ended, one
JSON object each, to SPANS_FILE.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import curate
from curate.contrib.tracing import instrument
from curate.worker import run_burst
from tests.tracing_app import job_workflow


def as_json(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {
        "name": span.name,
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "attributes": dict(span.attributes or {}),
        "links": [[link.context.trace_id, link.context.span_id] for link in span.links],
    }


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = curate.configure()
    instrument(runtime, tracer_provider=provider)
    asyncio.run(run_burst([job_workflow()], runtime))
    lines = [json.dumps(as_json(span)) for span in exporter.get_finished_spans()]
    Path(sys.argv[1]).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
