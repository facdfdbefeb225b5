"""curate.contrib.tracing with the real OpenTelemetry SDK and its in-memory exporter, on
real PostgreSQL: spans per item, claim and rescue, and the link from an item's span to
the trace that queued its row, in this process and in another."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, Tracer
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate import ProcessingStatus, Workflow
from curate.contrib.tracing import ATTEMPT, ITEM_ID, OUTCOME, ROWS, WORKER, WORKFLOW, instrument
from curate.testing import WorkflowHarness
from tests import tracing_app
from tests.helpers import insert_items, noop, run_migration_step
from tests.models import Item
from tests.test_docs import EXAMPLES
from tests.tracing_app import TracedJob, job_workflow

ROOT = Path(__file__).resolve().parent.parent
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


@dataclass
class Tracing:
    exporter: InMemorySpanExporter
    tracer: Tracer
    """For the test's own spans: the "request" that queues rows."""

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]

    def items(self, workflow: str = "job") -> dict[tuple[str, int], ReadableSpan]:
        """The item spans of ``workflow`` by (item id, attempt)."""
        found = {}
        for span in self.spans(f"process {workflow}"):
            attributes = span.attributes or {}
            found[(str(attributes[ITEM_ID]), int(str(attributes[ATTEMPT])))] = span
        return found


@pytest.fixture
def tracing(runtime: curate.Runtime) -> Tracing:
    """The runtime instrumented on a provider of the test's own (the global provider can
    be set only once per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(runtime, tracer_provider=provider)
    return Tracing(exporter, provider.get_tracer("tests"))


@pytest.fixture
async def jobs(engine: AsyncEngine) -> AsyncIterator[Workflow]:
    """The ``job`` workflow over a table with ``job_trace_context``, in the test's schema."""
    async with engine.begin() as conn:
        await conn.run_sync(tracing_app.Base.metadata.create_all)
    tracing_app.current_spans.clear()
    yield job_workflow()


async def add_jobs(engine: AsyncEngine, **kinds: str) -> None:
    """Rows of ``traced_jobs``, not queued: ``add_jobs(engine, j1="ok")`` adds job 1."""
    rows = [{"id": int(key.removeprefix("j")), "kind": kind} for key, kind in kinds.items()]
    async with engine.begin() as conn:
        await conn.execute(insert(TracedJob), rows)


async def queue(runtime: curate.Runtime, workflow: Workflow, ids: list[int]) -> None:
    sessionmaker = await runtime.database.sessionmaker()
    async with sessionmaker() as session, session.begin():
        await curate.queue(session, workflow, ids)


async def trace_contexts(engine: AsyncEngine) -> dict[int, str | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(TracedJob.id, TracedJob.job_trace_context))
        return dict(rows.all())  # type: ignore[arg-type]


def traceparent(span: SpanContext) -> str:
    return f"00-{span.trace_id:032x}-{span.span_id:016x}-{span.trace_flags:02x}"


async def test_a_span_per_item_with_its_attempt_and_outcome(
    runtime: curate.Runtime, engine: AsyncEngine, tracing: Tracing, jobs: Workflow
) -> None:
    await add_jobs(engine, j1="ok", j2="flaky", j3="broken")
    await queue(runtime, jobs, [1, 2, 3])  # outside any span: nothing to link to
    assert await trace_contexts(engine) == {1: None, 2: None, 3: None}

    await WorkflowHarness(runtime).drain(jobs)

    items = tracing.items()
    assert {key: span.attributes[OUTCOME] for key, span in items.items()} == {  # type: ignore[index]
        ("1", 1): "completed",
        ("2", 1): "retried",
        ("2", 2): "completed",
        ("3", 1): "retried",
        ("3", 2): "failed",
    }
    for (item_id, attempt), span in items.items():
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is None and not span.links
        assert span.attributes is not None
        assert (span.attributes[WORKFLOW], span.attributes[WORKER]) == ("job", "test-worker")
        # Current while the service ran: the service's own spans nest under it.
        assert span.context is not None
        assert tracing_app.current_spans[(int(item_id), attempt)] == span.context.span_id
        failed = span.attributes[OUTCOME] in ("retried", "failed")
        assert span.status.status_code is (StatusCode.ERROR if failed else StatusCode.UNSET)
        exceptions = [event for event in span.events if event.name == "exception"]
        assert len(exceptions) == failed
        if failed:
            assert span.attributes["error.type"] == "ValueError"
            message = f"ValueError: job {item_id} failed on attempt {attempt}"
            assert span.status.description == message
            assert exceptions[0].attributes is not None
            assert exceptions[0].attributes["exception.type"] == "ValueError"


async def test_the_item_span_links_to_the_trace_that_queued_it(
    runtime: curate.Runtime, engine: AsyncEngine, tracing: Tracing, jobs: Workflow
) -> None:
    await add_jobs(engine, j1="ok", j2="flaky")
    with tracing.tracer.start_as_current_span("POST /jobs") as request:
        await queue(runtime, jobs, [1, 2])
    queued_by = request.get_span_context()
    expected = traceparent(queued_by)
    assert await trace_contexts(engine) == {1: expected, 2: expected}

    await WorkflowHarness(runtime).drain(jobs)

    items = tracing.items()
    assert set(items) == {("1", 1), ("2", 1), ("2", 2)}  # a retry keeps the link
    for span in items.values():
        [link] = span.links
        assert (link.context.trace_id, link.context.span_id) == (
            queued_by.trace_id,
            queued_by.span_id,
        )
        # A link, not a parent: the item has a trace of its own.
        assert span.context is not None and span.context.trace_id != queued_by.trace_id

    await queue(runtime, jobs, [1])  # queued again outside any span: the old link goes
    assert (await trace_contexts(engine))[1] is None


async def test_a_table_without_the_column_has_spans_without_links(
    runtime: curate.Runtime, engine: AsyncEngine, tracing: Tracing
) -> None:
    work = Workflow("work", model=Item, service=noop)
    assert work.binding.trace_context is None
    await insert_items(engine, 2, status=None)
    with tracing.tracer.start_as_current_span("POST /items"):
        await queue(runtime, work, [1, 2])

    assert (await WorkflowHarness(runtime).drain(work)).completed == 2

    items = tracing.items("work")
    assert set(items) == {("1", 1), ("2", 1)}
    assert all(not span.links for span in items.values())
    assert all((span.attributes or {})[OUTCOME] == "completed" for span in items.values())


async def test_claim_and_rescue_spans(
    runtime: curate.Runtime, engine: AsyncEngine, tracing: Tracing, jobs: Workflow
) -> None:
    harness = WorkflowHarness(runtime)
    assert (await harness.drain(jobs)).claimed == 0
    assert tracing.spans("claim job") == []  # an empty poll is not traced

    await add_jobs(engine, j1="ok", j2="ok")
    await queue(runtime, jobs, [1, 2])
    await harness.drain(jobs)
    [claim] = tracing.spans("claim job")
    assert claim.attributes == {WORKFLOW: "job", ROWS: 2}
    assert claim.start_time is not None and claim.end_time is not None
    assert claim.start_time <= claim.end_time

    async with engine.begin() as conn:  # a row whose worker died with its lease
        await conn.execute(
            insert(TracedJob),
            {
                "id": 3,
                "job_status": ProcessingStatus.Processing,
                "job_attempts": 1,
                "job_lease_until": datetime.now(UTC) - timedelta(minutes=1),
            },
        )
    runtime.register(jobs)
    before = time.time_ns()
    assert await runtime.rescue() == 1
    after = time.time_ns()
    [rescue] = tracing.spans("rescue job")
    assert rescue.attributes == {WORKFLOW: "job", ROWS: 1}
    assert rescue.start_time is not None and rescue.end_time is not None
    assert before <= rescue.start_time <= rescue.end_time <= after


async def test_an_item_in_another_worker_process_links_to_the_queueing_trace(
    runtime: curate.Runtime,
    engine: AsyncEngine,
    tracing: Tracing,
    jobs: Workflow,
    database_url: str,
    schema: str,
    tmp_path: Path,
) -> None:
    await add_jobs(engine, j1="ok", j2="flaky")
    with tracing.tracer.start_as_current_span("POST /jobs") as request:
        await queue(runtime, jobs, [1, 2])
    queued_by = request.get_span_context()

    spans_file = tmp_path / "spans.jsonl"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CURATE_")}
    env |= {
        "CURATE_DATABASE_URL": database_url,
        "CURATE_DATABASE_SCHEMA": schema,
        "CURATE_WORKER_ID": "other-process",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.tracing_worker",
        str(spans_file),
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(worker.communicate(), timeout=120)
    assert worker.returncode == 0, stderr.decode()

    spans: list[dict[str, Any]] = [json.loads(line) for line in spans_file.read_text().splitlines()]
    items = {
        (span["attributes"][ITEM_ID], span["attributes"][ATTEMPT]): span
        for span in spans
        if span["name"] == "process job"
    }
    assert {key: span["attributes"][OUTCOME] for key, span in items.items()} == {
        ("1", 1): "completed",
        ("2", 1): "retried",
        ("2", 2): "completed",
    }
    for span in items.values():
        assert span["attributes"][WORKER] == "other-process"
        assert span["links"] == [[queued_by.trace_id, queued_by.span_id]]
    assert tracing.items() == {}  # nothing ran here


def test_queueing_without_opentelemetry_writes_no_trace_context() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed: importing it fails\n"
        "from curate.trace_context import current_traceparent\n"
        "assert current_traceparent() is None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


async def test_trace_context_column_helpers(engine: AsyncEngine) -> None:
    from curate.migrations import (
        add_trace_context_column,
        add_workflow_columns,
        drop_trace_context_column,
        drop_workflow_columns,
    )

    async def columns(table: str) -> dict[str, tuple[str, str]]:
        query = text(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = :t"
        )
        async with engine.connect() as conn:
            rows = await conn.execute(query, {"t": table})
            return {name: (kind, nullable) for name, kind, nullable in rows}

    await run_migration_step(engine, lambda: add_trace_context_column("items", "work"))
    assert (await columns("items"))["work_trace_context"] == ("text", "YES")
    await run_migration_step(engine, lambda: drop_trace_context_column("items", "work"))
    await run_migration_step(engine, lambda: drop_trace_context_column("items", "work"))
    assert "work_trace_context" not in await columns("items")

    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE plain (id integer PRIMARY KEY)"))
    await run_migration_step(engine, lambda: add_workflow_columns("plain", "job"))
    assert "job_trace_context" not in await columns("plain")  # not by default
    await run_migration_step(engine, lambda: drop_workflow_columns("plain", "job"))
    await run_migration_step(
        engine, lambda: add_workflow_columns("plain", "job", trace_context=True)
    )
    assert (await columns("plain"))["job_trace_context"] == ("text", "YES")
    await run_migration_step(engine, lambda: drop_workflow_columns("plain", "job"))
    assert set(await columns("plain")) == {"id"}


async def test_the_how_to_example(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    """docs/how-to/trace-with-opentelemetry.md: its set-up installs the global provider,
    which only this test in the suite does."""
    shop = importlib.import_module("tracing.shop")
    exporter = InMemorySpanExporter()
    provider = shop.setup_tracing(runtime, exporter)
    assert trace.get_tracer_provider() is provider, "another test set the global provider"
    async with engine.begin() as conn:
        await conn.run_sync(shop.Base.metadata.create_all)
    migration = importlib.import_module("tracing.add_trace_context")
    await run_migration_step(engine, migration.downgrade)
    await run_migration_step(engine, migration.upgrade)

    sessionmaker = await runtime.database.sessionmaker()
    requests = provider.get_tracer("tests")
    with requests.start_as_current_span("POST /orders") as request:
        async with sessionmaker() as session, session.begin():
            await shop.place_order(session, shop.Order(id=7))
    async with sessionmaker() as session, session.begin():
        session.add(shop.Order(id=8))
    with requests.start_as_current_span("POST /orders/8/invoice") as by_sql:
        async with sessionmaker() as session, session.begin():
            await shop.queue_invoice_by_sql(session, 8)
    assert (await WorkflowHarness(runtime).drain(shop.invoice)).completed == 2
    assert provider.force_flush()

    spans = exporter.get_finished_spans()
    items = {
        (span.attributes or {})[ITEM_ID]: span for span in spans if span.name == "process invoice"
    }
    rendered_in = [span.parent.span_id for span in spans if span.name == "render invoice"]
    for item_id, queued_by in (("7", request), ("8", by_sql)):
        item = items[item_id]
        assert item.context is not None and item.context.span_id in rendered_in
        [link] = item.links
        assert link.context.span_id == queued_by.get_span_context().span_id
    async with engine.connect() as conn:
        numbers = (await conn.scalars(select(shop.Order.invoice_number))).all()
    assert sorted(numbers) == ["INV-00007", "INV-00008"]


def test_curate_tracing_instruments_the_configured_runtime(
    settings: curate.CurateSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``CURATE_TRACING=true``: how a `curate run` worker, whose runtime the CLI makes, is
    traced (with the global provider `opentelemetry-instrument` sets up). Without
    OpenTelemetry installed it is a clear configuration error."""
    untraced = curate.configure(settings)
    assert untraced.item_hooks == [] and untraced.observers == []
    traced = curate.configure(settings.model_copy(update={"tracing": True}))
    assert len(traced.item_hooks) == 1 and len(traced.error_hooks) == 1
    assert len(traced.observers) == 1
    monkeypatch.setitem(sys.modules, "curate.contrib.tracing", None)
    with pytest.raises(curate.ConfigurationError, match=r"curate-workflows\[otel\]"):
        curate.configure(settings.model_copy(update={"tracing": True}))
