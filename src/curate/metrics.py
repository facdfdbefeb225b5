"""Prometheus metrics for curate (the ``metrics`` extra:
``pip install 'curate-workflows[metrics]'``).

`install_metrics(runtime)` attaches a `CurateMetrics` to a runtime, through the runtime's
item hook and observer (`curate.engine.hooks`), on a registry of its own, never the
global default one. Counters and histograms move as items run; the queue gauges are read
from the database at scrape time by `refresh_queue_gauges` (one cheap query per
workflow, served by the partial index on the queued status).

Exported, each labelled ``workflow``:

- ``curate_items_completed_total``, ``curate_items_failed_total``,
  ``curate_items_retried_total``, ``curate_items_dropped_total`` (the claim was lost),
  ``curate_items_unrecorded_total`` (the outcome could not be written),
  ``curate_items_rescued_total`` (rows returned by the rescuer of this process);
- ``curate_item_duration_seconds`` (histogram): service call plus outcome write;
- ``curate_claim_duration_seconds`` (histogram): one claim statement;
- ``curate_queue_depth`` (gauge): rows Queued, due or not;
- ``curate_oldest_queued_age_seconds`` (gauge): age of the oldest Queued row (from
  ``updated_at``; 0 when none is queued, absent when the table has no ``updated_at``).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from curate.engine.error_text import format_error
from curate.engine.hooks import ItemEvent
from curate.engine.outcome import Outcome
from curate.logs import logger
from curate.runtime import Runtime
from curate.workflow import Workflow

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CurateMetrics",
    "install_metrics",
    "refresh_queue_gauges",
    "render",
    "start_exporter",
]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

_installed: weakref.WeakKeyDictionary[Runtime, CurateMetrics] = weakref.WeakKeyDictionary()


class CurateMetrics:
    """curate's metrics on one `CollectorRegistry`: an item hook and an observer."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["workflow"]
        self.outcomes = {
            outcome: Counter(
                f"curate_items_{outcome.value}",
                f"Items whose outcome was {outcome.value}",
                labels,
                registry=self.registry,
            )
            for outcome in Outcome
        }
        self.rescued_items = Counter(
            "curate_items_rescued",
            "Rows whose lease expired, returned by this process's rescuer",
            labels,
            registry=self.registry,
        )
        self.item_duration = Histogram(
            "curate_item_duration_seconds",
            "Time to process one item: the service call and the outcome write",
            labels,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.claim_duration = Histogram(
            "curate_claim_duration_seconds",
            "Time taken by one claim statement",
            labels,
            buckets=CLAIM_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "curate_queue_depth", "Rows Queued, due or not", labels, registry=self.registry
        )
        self.oldest_queued_age = Gauge(
            "curate_oldest_queued_age_seconds",
            "Age of the oldest Queued row (from updated_at); 0 when none is queued",
            labels,
            registry=self.registry,
        )

    @asynccontextmanager
    async def item_hook(self, event: ItemEvent) -> AsyncIterator[None]:
        """The item hook: times the item and counts its outcome (none if cancelled)."""
        started = time.perf_counter()
        yield
        if event.outcome is not None:
            self.outcomes[event.outcome].labels(event.workflow).inc()
            self.item_duration.labels(event.workflow).observe(time.perf_counter() - started)

    def claimed(self, workflow: str, count: int, seconds: float) -> None:
        self.claim_duration.labels(workflow).observe(seconds)

    def rescued(self, workflow: str, count: int, seconds: float) -> None:
        self.rescued_items.labels(workflow).inc(count)

    def render(self) -> bytes:
        """Everything in Prometheus' text format (`CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


def install_metrics(runtime: Runtime, registry: CollectorRegistry | None = None) -> CurateMetrics:
    """The runtime's metrics, attached on the first call (later calls return the same).

    Items count from the next run on, so call it right after `curate.configure`.
    """
    metrics = _installed.get(runtime)
    if metrics is None:
        metrics = _installed[runtime] = CurateMetrics(registry)
        runtime.add_item_hook(metrics.item_hook)
        runtime.add_observer(metrics)
    return metrics


async def refresh_queue_gauges(runtime: Runtime, workflows: Sequence[Workflow]) -> None:
    """Read each workflow's queue depth and oldest queued age into the runtime's gauges."""
    metrics = install_metrics(runtime)
    engine = await runtime.database.engine()
    async with engine.connect() as connection:
        for workflow in workflows:
            row = (await connection.execute(workflow.statements.queue_depth)).one()
            metrics.queue_depth.labels(workflow.name).set(row.queued)
            if workflow.binding.updated_at is not None:
                age = row.oldest_queued_seconds
                metrics.oldest_queued_age.labels(workflow.name).set(age or 0.0)


async def render(runtime: Runtime, workflows: Sequence[Workflow]) -> bytes:
    """Refresh the queue gauges, then everything in Prometheus' text format."""
    await refresh_queue_gauges(runtime, workflows)
    return install_metrics(runtime).render()


async def start_exporter(
    runtime: Runtime, workflows: Sequence[Workflow], port: int, host: str = "0.0.0.0"
) -> asyncio.Server:
    """Serve ``GET /metrics`` on ``host:port`` (``curate run --metrics-port``).

    A minimal HTTP/1.0 responder on the running loop: each request refreshes the queue
    gauges, then answers in Prometheus' text format. Close the returned server to stop.
    """
    install_metrics(runtime)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target = ([*request.split(b"\r\n", 1)[0].split(b" "), b"", b""])[:2]
            if method == b"GET" and target.split(b"?", 1)[0] == b"/metrics":
                try:
                    body = await render(runtime, workflows)
                    status, content_type = "200 OK", CONTENT_TYPE_LATEST
                except Exception as exc:
                    logger.warning("metrics scrape failed: {}", format_error(exc))
                    body = f"metrics unavailable: {format_error(exc)}\n".encode()
                    status, content_type = "503 Service Unavailable", "text/plain"
            else:
                body, status, content_type = b"not found\n", "404 Not Found", "text/plain"
            head = (
                f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that went away or sent no request: nothing to answer
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(answer, host, port)
    logger.info("metrics on http://{}:{}/metrics", host, port)
    return server
